-- db: flow_log
DELETE FROM l7_request_log
