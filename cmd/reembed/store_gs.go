//go:build !reembed_nogs

package main

// The gs:// driver: gs://bucket/prefix (Application Default Credentials).
// Leave it out with -tags reembed_nogs.
import _ "gocloud.dev/blob/gcsblob"
