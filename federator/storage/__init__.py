"""The S3 edge: the only code that talks to object stores.

`endpoints` builds one boto3 client per store with that store's settings (addressing style,
checksum behaviour, connection pool); `retrying` is the one retry policy for transient S3
errors; `listings` reads buckets into plain values; `copying` is the dataset copy engine;
`registry` is the model registry on S3. Nothing outside this package sees a boto3 type.
"""
