-- db: flow_log
SELECT request_domain, count() AS requests, avg(response_duration) AS avg_us
FROM l7_request_log
GROUP BY request_domain
HAVING requests > 10
ORDER BY requests DESC, request_domain
LIMIT 20 OFFSET 40
