-- db: flow_metrics
SELECT time(time, 60) AS t, sum(requests) AS rps, sum(latency_sum_us) / sum(latency_count) AS avg_latency_us
FROM application_1s
WHERE time >= now() - 3600
GROUP BY t ORDER BY t
