// Package rootfs builds a container's root filesystem inside its new mount
// namespace: the spec's mounts, device nodes, /dev symlinks, pivot_root,
// masked and read-only paths.
package rootfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is a spec mount's option list split the way the kernel wants
// it: mount(2) flags and data, propagation, and the mount_setattr(2)
// attributes of the recursive options.
type MountOptions struct {
	Flags       uintptr // MS_* flags for the mount itself
	Cleared     uintptr // MS_* flags an option asked to clear (rw, suid, dev, ...)
	Propagation uintptr // MS_SHARED/MS_SLAVE/... applied in a second call
	Data        string  // filesystem-specific options
	// RecSet and RecClear are MOUNT_ATTR_* attributes (rro, rnosuid, ...)
	// applied to the mount and every mount below it.
	RecSet, RecClear uint64
	// CopyUp (tmpcopyup) fills a new tmpfs with what the directory it
	// covers held.
	CopyUp bool
	// IDMap is set by idmap and ridmap, which ask for an id-mapped mount;
	// RecursiveIDMap (ridmap) maps the mounts below the top one too.
	IDMap, RecursiveIDMap bool
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
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// recursiveOptions are the runtime-spec's recursive mount options: the
// attribute is set (or cleared) on the whole tree with mount_setattr(2)
// and AT_RECURSIVE, where mount(2) would change the top mount only.
var recursiveOptions = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
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

// ParseMountOptions splits spec mount options into flags, propagation,
// recursive attributes and data. An option it does not know is data for
// the filesystem, as with mount(8).
func ParseMountOptions(options []string) MountOptions {
	var o MountOptions
	var data []string
	for _, opt := range options {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
				o.Cleared |= f.flag
			} else {
				o.Flags |= f.flag
				o.Cleared &^= f.flag
			}
			continue
		}
		if r, ok := recursiveOptions[opt]; ok {
			if r.clear {
				o.RecClear |= r.attr
				o.RecSet &^= r.attr
			} else {
				o.RecSet |= r.attr
				o.RecClear &^= r.attr
			}
			// The atime attributes are one field: setting one means
			// clearing the field first (mount_setattr(2)).
			if r.attr&unix.MOUNT_ATTR__ATIME == r.attr {
				o.RecClear |= unix.MOUNT_ATTR__ATIME
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.Propagation = p
			continue
		}
		switch opt {
		case "tmpcopyup":
			o.CopyUp = true
		case "idmap":
			o.IDMap = true
		case "ridmap":
			o.IDMap, o.RecursiveIDMap = true, true
		default:
			data = append(data, opt)
		}
	}
	o.Data = strings.Join(data, ",")
	return o
}

// recursiveNames picks the recursive options out of a spec mount's
// options, for errors.
func recursiveNames(options []string) string {
	var names []string
	for _, o := range options {
		if _, ok := recursiveOptions[o]; ok {
			names = append(names, o)
		}
	}
	return strings.Join(names, ",")
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

// KnownMountOptions lists every option ParseMountOptions interprets and
// Prepare honours (the features command advertises them).
func KnownMountOptions() []string {
	out := []string{"tmpcopyup"}
	for o := range flagOptions {
		out = append(out, o)
	}
	for o := range recursiveOptions {
		out = append(out, o)
	}
	for o := range propagationOptions {
		out = append(out, o)
	}
	return out
}
