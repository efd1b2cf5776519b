-- db: flow_log
SELECT * FROM l7_requests
