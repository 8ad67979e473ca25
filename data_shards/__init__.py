"""Source videos to WebDataset shards and back: decoding (`video`), clips (`staging`), splits, the
writer (`writer`, `packing`), the manifest, ab statistics, and the rank-aware reader."""
