-- db: flow_log
SELECT count() FROM l7_request_log
WHERE (response_code >= 500 OR response_status = 'timeout') AND server_port != 443
