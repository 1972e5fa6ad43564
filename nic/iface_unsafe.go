package nic

import (
	"fmt"
	"unsafe"
)

// ethtool's ETHTOOL_GRXFHINDIR (include/uapi/linux/ethtool.h): read the RSS
// indirection table, struct ethtool_rxfh_indir { cmd, size, ring_index[] }.
const ethtoolGRXFHIndir = 0x00000038

// RSSTable returns the interface's RSS indirection table: for each hash
// bucket, the rx queue its flows go to. A driver without RSS (veth) answers
// EOPNOTSUPP.
func RSSTable(ifname string) ([]uint32, error) {
	// The request is u32s in native byte order, which ethtool takes as bytes.
	get := func(buf []uint32) error {
		if err := ethtool(ifname, unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 4*len(buf))); err != nil {
			return fmt.Errorf("nic: %s: RSS table: %w", ifname, err)
		}
		return nil
	}
	// First the table's size (size 0 asks for it), then the table.
	head := []uint32{ethtoolGRXFHIndir, 0}
	if err := get(head); err != nil {
		return nil, err
	}
	if head[1] == 0 {
		return nil, nil
	}
	buf := make([]uint32, 2+head[1])
	buf[0], buf[1] = ethtoolGRXFHIndir, head[1]
	if err := get(buf); err != nil {
		return nil, err
	}
	return buf[2:], nil
}
