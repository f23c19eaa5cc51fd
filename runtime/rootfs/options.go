// Package rootfs builds a container's root filesystem inside its new mount
// namespace: the spec's mounts, device nodes, /dev symlinks, pivot_root,
// masked and read-only paths.
package rootfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is a spec mount's option list split the way mount(2) wants it.
type MountOptions struct {
	Flags       uintptr // MS_* flags for the mount itself
	Propagation uintptr // MS_SHARED/MS_SLAVE/... applied in a second call
	Data        string  // filesystem-specific options
}

var flagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// ignoredOptions are runtime-level options other runtimes accept that mean
// nothing to the kernel; passing them as data would make mount(2) fail.
var ignoredOptions = map[string]bool{"tmpcopyup": true, "rro": true, "rrw": true}

// ParseMountOptions splits spec mount options into flags, propagation and data.
func ParseMountOptions(options []string) MountOptions {
	var o MountOptions
	var data []string
	for _, opt := range options {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
			} else {
				o.Flags |= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.Propagation = p
			continue
		}
		if ignoredOptions[opt] {
			continue
		}
		data = append(data, opt)
	}
	o.Data = strings.Join(data, ",")
	return o
}

// ParsePropagation maps linux.rootfsPropagation to mount flags; empty means
// rslave, as in runc, so host mounts still reach the container but not back.
func ParsePropagation(s string) (uintptr, bool) {
	if s == "" {
		return unix.MS_SLAVE | unix.MS_REC, true
	}
	p, ok := propagationOptions[s]
	return p, ok
}

// KnownMountOptions lists every option ParseMountOptions interprets.
func KnownMountOptions() []string {
	var out []string
	for o := range flagOptions {
		out = append(out, o)
	}
	for o := range propagationOptions {
		out = append(out, o)
	}
	return out
}
