package analytics

import "sort"

// NMS is greedy non-maximum suppression: detections sorted by score (highest first, ties keep input
// order), each kept unless it overlaps an already kept one by more than iou. With classAgnostic false only
// detections of the same class suppress each other (one object may then be kept as both car and truck);
// with true any class does. It reorders dets in place and returns the kept prefix.
func NMS(dets []Detection, iou float32, classAgnostic bool) []Detection {
	sort.SliceStable(dets, func(i, j int) bool { return dets[i].Score > dets[j].Score })
	kept := 0
	for i := range dets {
		d := dets[i]
		keep := true
		for k := 0; k < kept; k++ {
			if !classAgnostic && dets[k].Class != d.Class {
				continue
			}
			if IoU(dets[k].Box, d.Box) > iou {
				keep = false
				break
			}
		}
		if keep {
			dets[kept] = d
			kept++
		}
	}
	return dets[:kept]
}
