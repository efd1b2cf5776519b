-- db: flow_log
SELECT endpoint, percentile(response_duration, 50) AS p50, percentile(response_duration, 99) AS p99, percentile(response_duration, 99.9) AS p999
FROM l7_request_log GROUP BY endpoint
