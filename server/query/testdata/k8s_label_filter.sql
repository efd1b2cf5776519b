-- db: flow_log
SELECT count() FROM l7_request_log WHERE `k8s.label.app.kubernetes.io/name_1` = 'checkout' AND k8s.label.tier_0 LIKE 'front%'
