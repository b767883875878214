"""The admission server: TLS, the two routes, AdmissionReview in and out, the
deadline, hot reload of config and certificates, one worker or several.

It is handed its cluster adapters (the watch caches, the Event sink) by
whoever starts it, and reads nothing of the cluster while it answers.
"""
