-- db: flow_log
SELECT count() FROM l7_request_log WHERE pod_1 = 'web-7d4f' AND service_1 IN ('web', 'api') AND pod_ns_0 != 'kube-system'
