package network

import "github.com/hostnet-dev/hostnet/shim/bundle"

// BridgeKey is the key bridge mode gives container id of namespace whose
// bundle is bundlePath: the owner of its lease, its nftables rules and its
// FORWARD rules. `hostnet doctor` matches a key to the bundle it must come
// from, to tell a leftover from another containerd's container.
func BridgeKey(bundlePath, namespace, id string) string {
	return attachmentKey(Request{Bundle: bundle.New(bundlePath), Namespace: namespace, ID: id})
}
