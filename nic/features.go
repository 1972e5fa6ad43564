package nic

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Feature is one of the interface's offloads as ethtool -k lists them, by
// the kernel's name for it (rx-lro, rx-gro-hw, ...).
type Feature struct {
	Name      string
	Available bool // the driver can change it
	Requested bool // what was asked for
	Active    bool // what is in force
	Fixed     bool // ethtool's [fixed]: not available, or never to be changed
}

// Features are an interface's offloads in the kernel's order.
type Features []Feature

// Get finds a feature by its kernel name.
func (fs Features) Get(name string) (Feature, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return Feature{}, false
}

// Offloads that fight XDP, by the kernel's names: LRO and hardware GRO
// merge segments before the XDP program sees them, so a frame would be
// larger than an AF_XDP frame and no longer the peer's segment; native XDP
// drivers refuse to attach with them on (or turn them off themselves).
// ethtool -K knows rx-lro as lro.
const (
	FeatureLRO   = "rx-lro"
	FeatureGROHW = "rx-gro-hw"
)

// ethtool's string sets and their string length (include/uapi/linux/ethtool.h).
const (
	ethSSFeatures  = 4 // ETH_SS_FEATURES
	ethGstringLen  = 32
	sizeofSsetInfo = 16 // cmd, reserved, sset_mask; then a u32 per set asked
	sizeofGstrings = 12 // cmd, string_set, len; then len strings
	sizeofGfeature = 16 // available, requested, active, never_changed
)

// ReadFeatures reads the interface's offloads as ethtool -k does: the
// names of the feature set (ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS) and their
// bits (ETHTOOL_GFEATURES).
func ReadFeatures(ifname string) (Features, error) {
	wrap := func(what string, err error) error {
		return fmt.Errorf("nic: %s: ethtool features (%s): %w", ifname, what, err)
	}
	info := make([]byte, sizeofSsetInfo+4)
	binary.NativeEndian.PutUint32(info, unix.ETHTOOL_GSSET_INFO)
	binary.NativeEndian.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtool(ifname, info); err != nil {
		return nil, wrap("set info", err)
	}
	if binary.NativeEndian.Uint64(info[8:]) == 0 {
		return nil, wrap("set info", unix.EOPNOTSUPP)
	}
	n := int(binary.NativeEndian.Uint32(info[sizeofSsetInfo:]))
	if n == 0 || n > 4096 {
		return nil, wrap("set info", fmt.Errorf("%d features", n))
	}

	strs := make([]byte, sizeofGstrings+n*ethGstringLen)
	binary.NativeEndian.PutUint32(strs, unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(strs[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(strs[8:], uint32(n))
	if err := ethtool(ifname, strs); err != nil {
		return nil, wrap("names", err)
	}

	blocks := (n + 31) / 32
	bits := make([]byte, 8+blocks*sizeofGfeature)
	binary.NativeEndian.PutUint32(bits, unix.ETHTOOL_GFEATURES)
	binary.NativeEndian.PutUint32(bits[4:], uint32(blocks))
	if err := ethtool(ifname, bits); err != nil {
		return nil, wrap("bits", err)
	}
	return parseFeatures(strs, bits)
}

// parseFeatures reads the answers to ETHTOOL_GSTRINGS (names) and
// ETHTOOL_GFEATURES (bits): feature i is bit i%32 of block i/32.
func parseFeatures(strs, bits []byte) (Features, error) {
	if len(strs) < sizeofGstrings || len(bits) < 8 {
		return nil, fmt.Errorf("nic: ethtool features: short answer")
	}
	n := int(binary.NativeEndian.Uint32(strs[8:]))
	if len(strs) < sizeofGstrings+n*ethGstringLen {
		return nil, fmt.Errorf("nic: ethtool features: %d names in %d bytes", n, len(strs))
	}
	blocks := int(binary.NativeEndian.Uint32(bits[4:]))
	if len(bits) < 8+blocks*sizeofGfeature {
		return nil, fmt.Errorf("nic: ethtool features: %d blocks in %d bytes", blocks, len(bits))
	}
	if n > blocks*32 {
		n = blocks * 32
	}
	fs := make(Features, n)
	for i := range fs {
		name := strs[sizeofGstrings+i*ethGstringLen:][:ethGstringLen]
		b := bits[8+(i/32)*sizeofGfeature:]
		bit := func(word int) bool { return binary.NativeEndian.Uint32(b[4*word:])&(1<<(i%32)) != 0 }
		available, neverChanged := bit(0), bit(3)
		fs[i] = Feature{
			Name:      unix.ByteSliceToString(name),
			Available: available,
			Requested: bit(1),
			Active:    bit(2),
			Fixed:     !available || neverChanged,
		}
	}
	return fs, nil
}
