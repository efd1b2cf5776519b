-- db: flow_log
SELECT pod_9 FROM l7_request_log
