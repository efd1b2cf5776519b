-- db: flow_log
SELECT server_port,
       respose_code
FROM l7_request_log
