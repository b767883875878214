"""What already runs: a full pass over the cluster's Pods and workloads (the
one-shot audit and the watch's resync), the continuous audit with its
findings, Lease and PolicyReports. Handed its cluster adapters (a reader, the
watch caches, the Event sink) by whoever starts it."""
