-- db: flow_metrics
SELECT service_1, sum(requests) FROM application_1m WHERE lower(service_1) LIKE '%api%' AND time > now() - 600 GROUP BY service_1
