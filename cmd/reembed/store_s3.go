//go:build !reembed_nos3

package main

// The s3:// driver: s3://bucket/prefix (the AWS SDK's environment: AWS_* variables, profile, IRSA or pod identity).
// Leave it out with -tags reembed_nos3.
import _ "gocloud.dev/blob/s3blob"
