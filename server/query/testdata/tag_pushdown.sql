-- db: flow_log
SELECT service_0, service_1, count() AS requests, countIf(response_status = 'server_error') AS errors, percentile(response_duration, 99) AS p99_us, time(time, 3600) AS hour FROM l7_request_log WHERE time >= 1700000000 GROUP BY service_0, service_1, hour HAVING requests > 1 ORDER BY requests DESC LIMIT 10
