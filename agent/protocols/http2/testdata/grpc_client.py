# Calls the record.sh gRPC server: two OK calls and one NOT_FOUND on one connection.
import sys
import grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
ping = ch.unary_unary("/demo.Echo/Ping")
get = ch.unary_unary("/demo.Echo/Get")
print(ping(b"a", metadata=[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]))
print(ping(b"b"))
try:
    get(b"x")
except grpc.RpcError as e:
    print(e.code())
ch.close()
