-- db: flow_log
SELECT count() FROM l7_request_log WHERE server_port = = 80
