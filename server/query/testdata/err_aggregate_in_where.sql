-- db: flow_log
SELECT 1 FROM l7_request_log WHERE count() > 1
