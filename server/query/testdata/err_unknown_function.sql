-- db: flow_log
SELECT sleep(3) FROM l7_request_log
