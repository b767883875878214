"""The cluster part: the only code that imports the kubernetes client and kopf.

Watch caches, the Event sink, the Secret and webhook configurations of
managed certificates, the audit's reader, Lease and PolicyReports, each an
adapter behind a small protocol. Whoever starts a server or an audit builds
them and hands them in; nothing here is read while a review is answered but
the caches' memory.
"""
