//go:build !reembed_noazblob

package main

// The azblob:// driver: azblob://container/prefix (AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or Azure default credentials).
// Leave it out with -tags reembed_noazblob.
import _ "gocloud.dev/blob/azureblob"
