-- db: flow_log
SELECT DISTINCT lower(request_type) FROM l7_request_log WHERE l7_protocol = 'HTTP1'
