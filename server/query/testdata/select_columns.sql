-- db: flow_log
SELECT time, server_port, request_resource FROM l7_request_log LIMIT 10
