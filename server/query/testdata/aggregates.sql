-- db: flow_log
SELECT count(*), count(DISTINCT request_domain), sum(request_length), min(response_duration), max(response_duration), uniq(ip4_0, client_port) FROM l7_request_log
