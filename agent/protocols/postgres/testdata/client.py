"""Minimal PostgreSQL protocol 3.0 client used by record.sh (no driver needed)."""
import socket, struct, sys, time

PORT = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", PORT))

def recv(wait=0.15):
    s.settimeout(wait)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        pass
    return data

def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body

def cstr(x):
    return x.encode() + b"\0"

s.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest; server has ssl=off -> 'N'
recv()
params = cstr("user") + cstr("postgres") + cstr("database") + cstr("shop") + \
    cstr("application_name") + cstr("sonde-test") + b"\0"
s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
recv()
for q in ["CREATE TABLE items (id int PRIMARY KEY, name text)",
          "INSERT INTO items VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')",
          "SELECT id, name FROM items ORDER BY id",
          "SELECT * FROM missing_table",
          "INSERT INTO items VALUES (1, 'dup')",
          "BEGIN; UPDATE items SET name = 'fig' WHERE id = 2; COMMIT"]:
    s.sendall(msg(b"Q", cstr(q)))
    recv()
# Extended protocol, unnamed statement: Parse/Bind/Describe/Execute/Sync in one write.
p = msg(b"P", cstr("") + cstr("SELECT name FROM items WHERE id = $1") + struct.pack("!H", 0))
b = msg(b"B", cstr("") + cstr("") + struct.pack("!H", 0) + struct.pack("!H", 1) +
        struct.pack("!I", 1) + b"2" + struct.pack("!H", 0))
s.sendall(p + b + msg(b"D", b"P" + cstr("")) + msg(b"E", cstr("") + struct.pack("!I", 0)) + msg(b"S"))
recv()
# Named statement: prepare in one batch, execute twice later by name.
s.sendall(msg(b"P", cstr("upd") + cstr("UPDATE items SET name = $1 WHERE id = $2") + struct.pack("!H", 0)) + msg(b"S"))
recv()
for name, ident in (("kiwi", b"3"), ("lime", b"1")):
    bind = msg(b"B", cstr("") + cstr("upd") + struct.pack("!H", 0) + struct.pack("!H", 2) +
               struct.pack("!I", len(name)) + name.encode() + struct.pack("!I", len(ident)) + ident +
               struct.pack("!H", 0))
    s.sendall(bind + msg(b"E", cstr("") + struct.pack("!I", 0)) + msg(b"S"))
    recv()
# Error inside an extended batch (division by zero at execution).
s.sendall(msg(b"P", cstr("") + cstr("SELECT 1/0") + struct.pack("!H", 0)) +
          msg(b"B", cstr("") + cstr("") + b"\0\0\0\0\0\0") + msg(b"E", cstr("") + struct.pack("!I", 0)) + msg(b"S"))
recv()
s.sendall(msg(b"C", b"S" + cstr("upd")) + msg(b"S"))
recv()
s.sendall(msg(b"X"))
time.sleep(0.2)
s.close()
