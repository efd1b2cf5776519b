"""Minimal MySQL wire-protocol client used by record.sh (no driver needed): it lets the capture
exercise both classic EOF and CLIENT_DEPRECATE_EOF result sets and prepared statements."""
import hashlib, socket, struct, sys, time

PORT = int(sys.argv[1])
LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS = 0x1, 0x8, 0x200, 0x2000
SECURE_CONNECTION, MULTI_RESULTS, PLUGIN_AUTH, DEPRECATE_EOF = 0x8000, 0x20000, 0x80000, 0x1000000

class Conn:
    def __init__(self, user, password, db, deprecate_eof):
        self.s = socket.create_connection(("127.0.0.1", PORT))
        self.buf = b""
        seq, greet = self.read()
        ver_end = greet.index(b"\0", 1)
        p = ver_end + 1 + 4
        salt = greet[p:p + 8]
        p += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
        salt += greet[p:p + 12]
        caps = LONG_PASSWORD | CONNECT_WITH_DB | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION | \
            MULTI_RESULTS | PLUGIN_AUTH | (DEPRECATE_EOF if deprecate_eof else 0)
        h1 = hashlib.sha1(password.encode()).digest()
        h3 = hashlib.sha1(salt + hashlib.sha1(h1).digest()).digest()
        token = bytes(a ^ b for a, b in zip(h1, h3))
        body = struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 23 + user.encode() + b"\0"
        body += bytes([len(token)]) + token + db.encode() + b"\0" + b"mysql_native_password\0"
        self.write(1, body)
        self.read_all()

    def write(self, seq, payload):
        self.s.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload)

    def read(self):
        while True:
            if len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:3], "little")
                if len(self.buf) >= 4 + n:
                    seq, payload = self.buf[3], self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return seq, payload
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def read_all(self, wait=0.15):
        """Reads whatever arrives within `wait` seconds (the capture is what matters)."""
        self.s.settimeout(wait)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    break
                self.buf += d
        except socket.timeout:
            pass
        self.s.settimeout(None)
        out, self.buf = self.buf, b""
        return out

    def command(self, cmd, body=b""):
        self.write(0, bytes([cmd]) + body)
        return self.read_all()

def stmt_id(resp):
    return struct.unpack("<I", resp[5:9])[0]

def session(deprecate_eof):
    c = Conn("app", "secret", "shop", deprecate_eof)
    q = lambda sql: c.command(0x03, sql.encode())
    if not deprecate_eof:
        q("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(32))")
        q("INSERT INTO items VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')")
    q("SELECT id, name FROM items ORDER BY id")
    q("SELECT * FROM items WHERE id > 100")
    q("SELECT * FROM missing_table")
    q("UPDATE items SET name = 'fig' WHERE id = 2")
    c.command(0x0e)                     # COM_PING
    c.command(0x02, b"information_schema")  # COM_INIT_DB
    c.command(0x02, b"no_such_db")          # COM_INIT_DB error
    c.command(0x02, b"shop")
    r = c.command(0x16, b"SELECT name FROM items WHERE id = ?")  # COM_STMT_PREPARE
    sid = stmt_id(r)
    # COM_STMT_EXECUTE: id, flags 0, iterations 1, null bitmap, new-params-bound 1, type LONG, value
    c.command(0x17, struct.pack("<IBI", sid, 0, 1) + b"\0" + b"\1" + b"\x03\x00" + struct.pack("<i", 3))
    c.command(0x19, struct.pack("<I", sid))  # COM_STMT_CLOSE (no response)
    q("SELECT 1; SELECT 2")                  # two statements: rejected without MULTI_STATEMENTS
    c.command(0x01)                          # COM_QUIT
    c.s.close()

session(False)
session(True)
try:
    Conn("app", "wrong", "shop", False)      # failed login
except EOFError:
    pass
time.sleep(0.2)
