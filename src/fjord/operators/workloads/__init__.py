"""Workload health: what a real kubelet reports about an app's Pods, sent where fjord sees it."""
