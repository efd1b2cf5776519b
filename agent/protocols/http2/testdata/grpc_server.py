# Minimal generic gRPC server (raw bytes, no generated code) for record.sh.
import sys, time
from concurrent import futures
import grpc

def ok(req, ctx):
    return b"pong:" + req

def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such item")

handlers = {"Ping": grpc.unary_unary_rpc_method_handler(ok), "Get": grpc.unary_unary_rpc_method_handler(fail)}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Echo", handlers),))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
time.sleep(float(sys.argv[2]))
