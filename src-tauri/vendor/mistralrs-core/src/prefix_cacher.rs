use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use candle_core::{DType, Device, Result, Tensor};
use indexmap::IndexMap;
use itertools::Itertools;
use tracing::info;

use crate::{
    kv_cache::RecurrentStateSnapshot, paged_attention::block_hash::BlockHash, pipeline::KvCache,
    sequence::Sequence,
};

#[derive(PartialEq, Eq, Debug, Hash)]
struct Tokens(Vec<u32>);

impl Tokens {
    /// Returns the length of the common prefix shared with `other`.
    fn shared_prefix_len(&self, other: &Self) -> usize {
        self.0
            .iter()
            .zip(other.0.iter())
            .take_while(|(a, b)| a == b)
            .count()
    }
}

impl From<Vec<u32>> for Tokens {
    fn from(value: Vec<u32>) -> Self {
        Self(value)
    }
}

/// Troupe patch: the most bytes the prefix cache's entries may hold together, oldest evicted
/// first (an entry larger than the whole budget is not kept). Upstream bounded only the number
/// of entries on a GPU, and an entry is a whole KV cache: from ~25 MB for a 135 M model to
/// gigabytes for a 7 B one at a long context. One budget for the process, set by the app that
/// embeds the engine (it runs one), so changing it needs no reload; unbounded until set.
static BYTE_BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Troupe patch: sets the prefix cache's byte budget (see `BYTE_BUDGET`); applies from the
/// next eviction, which follows every completed request.
pub fn set_prefix_cache_budget(bytes: usize) {
    BYTE_BUDGET.store(bytes, Ordering::Relaxed);
}

/// Troupe patch: a request that matches all of an entry but at most this many tokens at its
/// end continues it, and takes it over (see `find_matching_cache`). A chat's next turn matches
/// the entry of the reply before it all but a few tokens: the reply's end is tokenized anew in
/// the next prompt (a trimmed space, the end-of-turn marker), and a warm-up's one token is not
/// in the next prompt at all. A request that shares less (a new chat with the same Character)
/// gets a copy and leaves the entry to others.
const TAKE_TAIL: usize = 16;

/// Troupe patch: opens a new anonymous file for an entry to leave memory into (see `OnFile`).
pub type SpillFile = Arc<dyn Fn() -> std::io::Result<File> + Send + Sync>;

/// Troupe patch: see `set_prefix_cache_spill`.
static SPILL: RwLock<Option<SpillFile>> = RwLock::new(None);

/// Troupe patch: entries that a new request does not continue leave memory for files that
/// `make_file` opens (the app's are unlinked, in its cache folder). The OS keeps such a file in
/// its page cache while memory is free and writes it out when memory is short, so earlier chats'
/// prompts stop counting against the process and give way before anything is swapped; a hit
/// reads its entry back. The entry a request continues is taken, never written, so a chat's turns
/// cost no file traffic; switching chats writes the one left behind once. `None` (upstream, and
/// the default) keeps every entry in memory. Applies to prefix caches made afterwards.
pub fn set_prefix_cache_spill(make_file: Option<SpillFile>) {
    *SPILL.write().unwrap_or_else(|e| e.into_inner()) = make_file;
}

/// Troupe patch: an entry's keys and values written to a file of its own, layer by layer, as
/// `tensors` lists them (layer, whether values, shape, dtype). The file stays with the entry, so
/// an entry read back (a hit that copies it) leaves memory again without a second write.
struct OnFile {
    file: File,
    tensors: Vec<(usize, bool, Vec<usize>, DType)>,
    bytes: usize,
}

#[derive(Clone)]
struct CacheElement {
    /// Troupe patch: in the stored form (`KvCache::stored`: the tokens written, F16 on the CPU).
    cache: Vec<Option<KvCache>>,
    /// Troupe patch: the dtype the model writes, which a hit restores the cache to.
    dtype: Option<DType>,
    /// Recurrent state snapshots for hybrid models (one per recurrent layer)
    recurrent_snapshots: Option<Vec<RecurrentStateSnapshot>>,
    audio_hashes: Option<Vec<u64>>,
    image_hashes: Option<Vec<u64>>,
    video_hashes: Option<Vec<u64>>,
    /// Troupe patch: the entry's file, once it has left memory (see `leave_memory`).
    on_file: Option<Arc<OnFile>>,
}

impl CacheElement {
    /// Troupe patch: what the entry holds, in bytes, in memory or in its file.
    fn bytes(&self) -> usize {
        match &self.on_file {
            Some(on_file) if !self.in_memory() => on_file.bytes,
            _ => self.cache.iter().flatten().map(KvCache::bytes).sum(),
        }
    }

    /// Troupe patch: whether the entry's keys and values are in memory (not only in its file).
    fn in_memory(&self) -> bool {
        self.on_file.is_none()
            || self
                .cache
                .iter()
                .flatten()
                .any(|c| matches!(c, KvCache::Normal { k, .. } if k.all_data.is_some()))
    }

    /// Troupe patch: where the entry's tensors are, as upstream read it off the first layer
    /// holding keys; an entry out of memory counts as the CPU's. `None`: nothing to count.
    fn device(&self) -> Option<Device> {
        if !self.in_memory() {
            return Some(Device::Cpu);
        }
        let first = self
            .cache
            .iter()
            .find_or_first(|x| x.as_ref().is_some_and(|kv| kv.k().ok().flatten().is_some()));
        match first {
            Some(Some(KvCache::Normal { k, .. })) => k.all_data().map(|d| d.device().clone()),
            Some(Some(KvCache::Rotating { k, .. })) => k.all_data().map(|d| d.device().clone()),
            _ => None,
        }
    }

    /// Troupe patch: writes the entry to a file from `make_file` (once) and lets its tensors go.
    /// Entries with sliding-window layers, or tensors off the CPU, stay as they are.
    fn leave_memory(&mut self, make_file: &SpillFile) -> Result<()> {
        let movable = self.cache.iter().flatten().all(|c| match c {
            KvCache::Normal { k, v } => [k, v].iter().all(|s| {
                s.all_data().is_none_or(|d| {
                    d.device().is_cpu()
                        && matches!(d.dtype(), DType::F16 | DType::BF16 | DType::F32)
                })
            }),
            KvCache::Rotating { .. } => false,
            KvCache::Shared { .. } => true,
        });
        if !movable || !self.in_memory() {
            return Ok(());
        }
        if self.on_file.is_none() {
            let file = make_file()?;
            let mut out = BufWriter::with_capacity(1 << 20, &file);
            let (mut tensors, mut bytes) = (Vec::new(), 0);
            for (layer, cache) in self.cache.iter().enumerate() {
                let Some(KvCache::Normal { k, v }) = cache else {
                    continue;
                };
                for (is_v, d) in [(false, k.all_data()), (true, v.all_data())] {
                    let Some(d) = d else { continue };
                    // Little-endian, as `write_bytes` writes and `from_raw_buffer` reads it
                    // back on the CPUs this runs on; only this process reads the file.
                    d.write_bytes(&mut out)?;
                    bytes += d.elem_count() * d.dtype().size_in_bytes();
                    tensors.push((layer, is_v, d.dims().to_vec(), d.dtype()));
                }
            }
            out.flush()?;
            drop(out);
            self.on_file = Some(Arc::new(OnFile {
                file,
                tensors,
                bytes,
            }));
        }
        for cache in self.cache.iter_mut().flatten() {
            if let KvCache::Normal { k, v } = cache {
                k.all_data = None;
                v.all_data = None;
            }
        }
        Ok(())
    }

    /// Troupe patch: reads an entry that left memory back from its file, all of it or nothing.
    fn back_in_memory(&mut self) -> Result<()> {
        let Some(on_file) = self.on_file.clone().filter(|_| !self.in_memory()) else {
            return Ok(());
        };
        let normal = |c: &Option<KvCache>| matches!(c, Some(KvCache::Normal { .. }));
        if !on_file
            .tensors
            .iter()
            .all(|t| self.cache.get(t.0).is_some_and(normal))
        {
            candle_core::bail!("prefix cache: an entry's file does not match its layers");
        }
        let mut file = &on_file.file;
        file.seek(SeekFrom::Start(0))?;
        let mut read = Vec::with_capacity(on_file.tensors.len());
        let mut buf = Vec::new();
        for (_, _, shape, dtype) in &on_file.tensors {
            buf.resize(shape.iter().product::<usize>() * dtype.size_in_bytes(), 0);
            file.read_exact(&mut buf)?;
            read.push(Tensor::from_raw_buffer(&buf, *dtype, shape, &Device::Cpu)?);
        }
        for ((layer, is_v, _, _), tensor) in on_file.tensors.iter().zip(read) {
            if let Some(Some(KvCache::Normal { k, v })) = self.cache.get_mut(*layer) {
                let single = if *is_v { v } else { k };
                single.all_data = Some(tensor);
            }
        }
        Ok(())
    }

    /// Troupe patch: the tokens whose keys and values the entry holds. A sequence's last
    /// sampled token was never run through the model, so this is one less than its key when
    /// it ended by length; a hit reuses at most this many (upstream reused the whole key, the
    /// last position then attending to an unwritten row, which the capacity grown ahead had
    /// hidden and the stored form's exact length refused: the next turn of a chat missed).
    fn kv_len(&self) -> usize {
        self.cache
            .iter()
            .flatten()
            .filter(|layer| !layer.is_shared())
            .map(KvCache::current_seq_len)
            .min()
            .unwrap_or(0)
    }

    fn can_rewind_to(&self, len: usize) -> bool {
        self.cache
            .iter()
            .flatten()
            .all(|layer| layer.try_set_len(len).is_ok())
    }
}

pub struct PrefixCacheManagerV2 {
    caches: IndexMap<Tokens, CacheElement>,
    paged_recurrent_caches: IndexMap<Vec<BlockHash>, Vec<RecurrentStateSnapshot>>,
    n_on_device: usize,
    no_prefix_cache: bool,
    has_paged_attention: bool,
    /// Troupe patch: whether caches on the CPU count against `n_on_device` (see evict_caches).
    evict_on_cpu: bool,
    /// Troupe patch: where entries not in use go (`set_prefix_cache_spill`); `None`: memory.
    spill: Option<SpillFile>,
}

#[derive(Clone)]
pub enum MatchingCache {
    Normal {
        normal: Vec<Option<KvCache>>,
        recurrent_snapshots: Option<Vec<RecurrentStateSnapshot>>,
        images_to_keep: usize,
        audios_to_keep: usize,
        videos_to_keep: usize,
        toks: Vec<u32>,
        offset: usize,
    },
}

impl PrefixCacheManagerV2 {
    pub fn new(n_on_device: usize, no_prefix_cache: bool, has_paged_attention: bool) -> Self {
        if !no_prefix_cache && !has_paged_attention {
            info!("Prefix caching enabled (sequence-level, non-paged attention). Expect higher multi-turn throughput for both text and multimodal.");
        }
        PrefixCacheManagerV2 {
            caches: IndexMap::new(),
            paged_recurrent_caches: IndexMap::new(),
            n_on_device,
            no_prefix_cache,
            has_paged_attention,
            evict_on_cpu: true,
            spill: SPILL.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    fn paged_recurrent_capacity(&self) -> usize {
        self.n_on_device.max(1).saturating_mul(8)
    }

    /// This always keeps the cache on the device.
    pub fn add_sequence(
        &mut self,
        seq: &mut Sequence,
        recurrent_snapshots: Option<Vec<RecurrentStateSnapshot>>,
    ) {
        // Do not cache if prefix caching disabled
        if self.no_prefix_cache {
            return;
        }

        // For paged attention, prefix caching is handled by the KVCacheManager.
        // PrefixCacheManagerV2 only handles non-paged attention caching.
        if !self.has_paged_attention {
            // Troupe patch: kept in the stored form, half the bytes or less (see `KvCache::stored`).
            let live = seq.normal_cache();
            let dtype = live.iter().flatten().find_map(KvCache::dtype);
            let cache: Result<Vec<Option<KvCache>>> = live
                .iter()
                .map(|c| c.as_ref().map(KvCache::stored).transpose())
                .collect();
            let cache = match cache {
                Ok(cache) => cache,
                Err(e) => {
                    tracing::warn!("prefix cache: not keeping a sequence: {e}");
                    return;
                }
            };

            let element = CacheElement {
                cache,
                dtype,
                recurrent_snapshots,
                image_hashes: seq.image_hashes().map(|x| x.to_vec()),
                audio_hashes: seq.audio_hashes().map(|x| x.to_vec()),
                video_hashes: seq.video_hashes().map(|x| x.to_vec()),
                on_file: None,
            };
            // Troupe patch: an entry whose tokens begin this one's goes: this one serves every
            // prompt that one did. (A one-token request that ran a step too many, before
            // `Sequence::continue_after_prompt`, was stored both ways: two KV caches, one prompt.)
            let toks = seq.get_toks();
            self.caches.retain(|k, old| {
                !(toks.starts_with(&k.0)
                    && old.image_hashes == element.image_hashes
                    && old.audio_hashes == element.audio_hashes
                    && old.video_hashes == element.video_hashes)
            });
            self.caches.insert(toks.to_vec().into(), element);
        }
    }

    /// Evict the caches. This will evict the first k seqs such that the number of sequences on device after the copy is
    /// the maximum allowed. Returns the number of evicted sequences.
    pub fn evict_caches(&mut self) -> Result<usize> {
        if self.no_prefix_cache {
            return Ok(0);
        }
        let mut n_on_device = 0;
        for cache in self.caches.values() {
            // Troupe patch: read through `device`, which knows entries that left memory.
            let Some(cache_device) = cache.device() else {
                continue;
            };

            // Troupe patch: CPU caches count too. Upstream counts only GPU caches, so on CPU
            // nothing was ever evicted and memory grew by one KV cache per request.
            if !matches!(cache_device, Device::Cpu) || self.evict_on_cpu {
                n_on_device += 1;
            }
        }
        let mut n_evicted = 0;
        // Intentionally evict the first ones first, as they are the oldest
        for cache in self.caches.values_mut() {
            if n_on_device - n_evicted <= self.n_on_device {
                break;
            }
            let Some(cache_device) = cache.device() else {
                continue;
            };

            if !matches!(cache_device, Device::Cpu) || self.evict_on_cpu {
                cache.cache.clear();
                n_evicted += 1;
            }
        }

        self.caches.retain(|_tokens, cache| !cache.cache.is_empty());

        // Troupe patch: then down to the byte budget.
        n_evicted += self.evict_to_bytes(BYTE_BUDGET.load(Ordering::Relaxed));

        Ok(n_evicted)
    }

    /// Troupe patch: evicts the oldest entries until the rest hold at most `budget` bytes;
    /// returns how many went.
    fn evict_to_bytes(&mut self, budget: usize) -> usize {
        let mut held: usize = self.caches.values().map(CacheElement::bytes).sum();
        let mut n_evicted = 0;
        while held > budget {
            let Some((_, oldest)) = self.caches.shift_remove_index(0) else {
                break;
            };
            held -= oldest.bytes();
            n_evicted += 1;
        }
        n_evicted
    }

    /// Evict all the caches.
    pub fn evict_all_caches(&mut self) -> Result<usize> {
        let len = self.caches.len();
        self.caches.clear();
        self.paged_recurrent_caches.clear();
        Ok(len)
    }

    /// Add a recurrent-state snapshot for a paged-attention block-hash prefix key.
    /// This is used by hybrid models to restore recurrent states alongside paged KV prefix hits.
    pub fn add_paged_recurrent_prefix(
        &mut self,
        key: Vec<BlockHash>,
        snapshots: Vec<RecurrentStateSnapshot>,
    ) {
        if self.no_prefix_cache
            || !self.has_paged_attention
            || key.is_empty()
            || snapshots.is_empty()
        {
            return;
        }

        // Maintain LRU order by reinserting on update.
        let _ = self.paged_recurrent_caches.shift_remove(&key);
        self.paged_recurrent_caches.insert(key, snapshots);

        while self.paged_recurrent_caches.len() > self.paged_recurrent_capacity() {
            let _ = self.paged_recurrent_caches.shift_remove_index(0);
        }
    }

    /// Lookup a recurrent-state snapshot for a paged-attention block-hash prefix key.
    /// Returns a cloned snapshot and updates LRU order.
    pub fn get_paged_recurrent_prefix(
        &mut self,
        key: &[BlockHash],
    ) -> Option<Vec<RecurrentStateSnapshot>> {
        if self.no_prefix_cache || !self.has_paged_attention || key.is_empty() {
            return None;
        }

        let key = key.to_vec();
        let snapshots = self.paged_recurrent_caches.shift_remove(&key)?;
        let out = snapshots.clone();
        self.paged_recurrent_caches.insert(key, snapshots);
        Some(out)
    }

    /// Search for a matching cache given some tokens. Image-containing sequences are now cached too.
    pub fn search_for_matching_cache(
        &mut self,
        toks: &[u32],
        image_hashes: Option<&[u64]>,
        audio_hashes: Option<&[u64]>,
        video_hashes: Option<&[u64]>,
    ) -> Result<Option<MatchingCache>> {
        let found = self.find_matching_cache(toks, image_hashes, audio_hashes, video_hashes)?;
        // Troupe patch: a request is starting; the entry it continues, if any, is taken out of
        // the cache, so the rest leave memory before its prompt runs.
        self.entries_leave_memory();
        Ok(found)
    }

    /// Troupe patch: every entry still in memory leaves it for its file, where a file can be
    /// made (`set_prefix_cache_spill`); one that cannot be written stays in memory.
    fn entries_leave_memory(&mut self) {
        let Some(make_file) = self.spill.clone() else {
            return;
        };
        for element in self.caches.values_mut() {
            if let Err(e) = element.leave_memory(&make_file) {
                tracing::warn!("prefix cache: an entry stays in memory: {e}");
            }
        }
    }

    /// Upstream's `search_for_matching_cache`, which now wraps it.
    fn find_matching_cache(
        &mut self,
        toks: &[u32],
        image_hashes: Option<&[u64]>,
        audio_hashes: Option<&[u64]>,
        video_hashes: Option<&[u64]>,
    ) -> Result<Option<MatchingCache>> {
        // Do not search if prefix caching disabled or no tokens
        if self.no_prefix_cache || toks.is_empty() {
            return Ok(None);
        }

        if self.has_paged_attention {
            // For paged attention, prefix caching is handled by the KVCacheManager.
            // PrefixCacheManagerV2 only handles non-paged attention caching.
            return Ok(None);
        }

        let toks = Tokens(toks.to_vec());

        // Troupe patch: the entry's index and key length ride along (see "take" below).
        let mut best_match: Option<(usize, &CacheElement, usize, usize, usize, usize, usize)> =
            None;
        for (idx, (k, v)) in self.caches.iter().enumerate() {
            let match_len = toks.shared_prefix_len(k).min(v.kv_len());
            if match_len == 0 {
                continue;
            }

            let images_match_until = match image_hashes {
                Some(input_hashes) => match &v.image_hashes {
                    Some(cached_hashes) => input_hashes
                        .iter()
                        .zip(cached_hashes)
                        .take_while(|(a, b)| a == b)
                        .count(),
                    None => 0,
                },
                None => 0,
            };

            let audios_match_until = match audio_hashes {
                Some(input_hashes) => match &v.audio_hashes {
                    Some(cached_hashes) => input_hashes
                        .iter()
                        .zip(cached_hashes)
                        .take_while(|(a, b)| a == b)
                        .count(),
                    None => 0,
                },
                None => 0,
            };

            // Vision/audio models can use repeated placeholder tokens (e.g. <image_soft_token>)
            // that are identical regardless of the actual image/audio content. This means
            // token-level matching can extend through image/audio regions even when the
            // underlying content differs, leaving stale vision/audio encoder outputs in the
            // KV cache. Skip entries where any overlapping images or audios diverge.
            let cached_image_count = v.image_hashes.as_ref().map_or(0, |h| h.len());
            let input_image_count = image_hashes.map_or(0, |h| h.len());
            if images_match_until < input_image_count.min(cached_image_count) {
                continue;
            }

            let cached_audio_count = v.audio_hashes.as_ref().map_or(0, |h| h.len());
            let input_audio_count = audio_hashes.map_or(0, |h| h.len());
            if audios_match_until < input_audio_count.min(cached_audio_count) {
                continue;
            }

            let videos_match_until = match video_hashes {
                Some(input_hashes) => match &v.video_hashes {
                    Some(cached_hashes) => input_hashes
                        .iter()
                        .zip(cached_hashes)
                        .take_while(|(a, b)| a == b)
                        .count(),
                    None => 0,
                },
                None => 0,
            };

            let cached_video_count = v.video_hashes.as_ref().map_or(0, |h| h.len());
            let input_video_count = video_hashes.map_or(0, |h| h.len());
            if videos_match_until < input_video_count.min(cached_video_count) {
                continue;
            }

            // Sliding/rotating caches only retain a fixed tail. If a cache has already
            // truncated older tokens, it can still safely serve an exact extension of the
            // cached prefix, but it cannot be rewound to an earlier logical length. Skip such
            // candidates here so a rolled-over cache does not block a shorter valid prefix hit.
            if !v.can_rewind_to(match_len) {
                continue;
            }

            if best_match
                .as_ref()
                .is_none_or(|(len, _, _, _, _, _, _)| match_len > *len)
            {
                best_match = Some((
                    match_len,
                    v,
                    images_match_until,
                    audios_match_until,
                    videos_match_until,
                    idx,
                    k.0.len(),
                ));
            }
        }

        if let Some((
            match_len,
            cache_element,
            images_match_until,
            audios_match_until,
            videos_match_until,
            entry_idx,
            entry_len,
        )) = best_match
        {
            // Troupe patch: when the cached sequence covers the whole prompt (a regenerated
            // reply re-sends the same prompt), reuse all but its last token, which is fed again
            // to produce the first new logits. Upstream returned no match and re-prefilled it all.
            let match_len = if match_len == toks.0.len() {
                match_len - 1
            } else {
                match_len
            };
            if match_len == 0 || !cache_element.can_rewind_to(match_len) {
                return Ok(None);
            }
            let new_toks = toks.0[match_len..].to_vec();

            // Troupe patch: the sequence gets its own copy of the cached tensors. A clone
            // shares storage, and the sequence writes its new tokens in place from `match_len`
            // on, which overwrote the stored entry's KV for tokens its key still claims (a later
            // hit on that entry then attended to the wrong keys and values). When the new
            // sequence continues the entry (it matches all of it but at most `TAKE_TAIL` tokens
            // at its end), the entry is taken out instead: the sequence will be stored longer
            // when it completes, and no copy (up to hundreds of MB) is made, nor a file written.
            // Either way the layers are restored from the stored form into new storage.
            let take = match_len + TAKE_TAIL >= entry_len;
            let mut cache = if take {
                let (_, taken) = self
                    .caches
                    .shift_remove_index(entry_idx)
                    .expect("the index came from this map");
                taken
            } else {
                // The entries leave memory first, this one too, so that it is never held twice
                // (the entry and the sequence's copy): the copy is read from its file.
                self.entries_leave_memory();
                let (_, element) = self
                    .caches
                    .get_index(entry_idx)
                    .expect("the index came from this map");
                element.clone()
            };
            // An entry that left memory is read back from its file first (if that fails, the
            // prompt runs whole and the entry goes).
            if let Err(e) = cache.back_in_memory() {
                tracing::warn!("prefix cache: an entry could not be read back: {e}");
                if !take {
                    self.caches.shift_remove_index(entry_idx);
                }
                return Ok(None);
            }
            // Troupe patch: restored with room for the whole prompt, as a new cache is sized.
            let dtype = cache.dtype.unwrap_or(DType::F32);
            for layer in cache.cache.iter_mut().flatten() {
                *layer = layer.restored(dtype, toks.0.len())?;
            }
            // Count how many input images are not already cached
            let images_to_keep = if let Some(input_hashes) = image_hashes {
                input_hashes.len().saturating_sub(images_match_until)
            } else {
                0
            };
            let audios_to_keep = if let Some(input_hashes) = audio_hashes {
                input_hashes.len().saturating_sub(audios_match_until)
            } else {
                0
            };
            let videos_to_keep = if let Some(input_hashes) = video_hashes {
                input_hashes.len().saturating_sub(videos_match_until)
            } else {
                0
            };
            for layer in cache.cache.iter_mut().flatten() {
                if layer.try_set_len(match_len).is_err() {
                    return Ok(None);
                }
            }
            for layer in cache.cache.iter_mut().flatten() {
                layer.set_len(match_len)?;
            }
            return Ok(Some(MatchingCache::Normal {
                normal: cache.cache,
                recurrent_snapshots: cache.recurrent_snapshots,
                images_to_keep,
                audios_to_keep,
                videos_to_keep,
                toks: new_toks,
                offset: match_len,
            }));
        }

        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::{CacheElement, MatchingCache, PrefixCacheManagerV2, SpillFile};
    use crate::kv_cache::{KvCache, NormalCache, RotatingCache, SingleCache};

    fn make_cache_tensor(len: usize) -> candle_core::Result<Tensor> {
        Tensor::zeros((1, 1, len, 1), DType::F32, &Device::Cpu)
    }

    fn make_rotating_kv_cache(
        logical_len: usize,
        sliding_window: usize,
    ) -> candle_core::Result<KvCache> {
        let src = make_cache_tensor(logical_len)?;
        let mut k = RotatingCache::new(2, sliding_window, sliding_window);
        let mut v = RotatingCache::new(2, sliding_window, sliding_window);
        let _ = k.append(&src)?;
        let _ = v.append(&src)?;
        Ok(KvCache::Rotating { k, v })
    }

    fn make_normal_kv_cache(logical_len: usize) -> candle_core::Result<KvCache> {
        let src = make_cache_tensor(logical_len)?;
        let mut k = SingleCache::new(2, logical_len, logical_len);
        let mut v = SingleCache::new(2, logical_len, logical_len);
        k.append(&src)?;
        v.append(&src)?;
        Ok(KvCache::Normal { k, v })
    }

    #[test]
    fn skips_rolled_over_rotating_candidate_that_cannot_rewind() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(1, false, false);

        prefix_cacher.caches.insert(
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10].into(),
            CacheElement {
                cache: vec![Some(make_rotating_kv_cache(10, 4)?)],
                dtype: Some(DType::F32),
                recurrent_snapshots: None,
                audio_hashes: None,
                image_hashes: None,
                video_hashes: None,
                on_file: None,
            },
        );
        prefix_cacher.caches.insert(
            vec![1, 2, 3, 4, 5, 9].into(),
            CacheElement {
                cache: vec![Some(make_normal_kv_cache(6)?)],
                dtype: Some(DType::F32),
                recurrent_snapshots: None,
                audio_hashes: None,
                image_hashes: None,
                video_hashes: None,
                on_file: None,
            },
        );

        let hit = prefix_cacher.search_for_matching_cache(
            &[1, 2, 3, 4, 5, 6, 7, 99],
            None,
            None,
            None,
        )?;

        match hit {
            Some(MatchingCache::Normal { toks, offset, .. }) => {
                assert_eq!(offset, 5);
                assert_eq!(toks, vec![6, 7, 99]);
            }
            None => panic!("expected a shorter valid prefix-cache hit"),
        }

        Ok(())
    }

    #[test]
    fn allows_exact_extension_from_rolled_over_rotating_cache() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(1, false, false);

        prefix_cacher.caches.insert(
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10].into(),
            CacheElement {
                cache: vec![Some(make_rotating_kv_cache(10, 4)?)],
                dtype: Some(DType::F32),
                recurrent_snapshots: None,
                audio_hashes: None,
                image_hashes: None,
                video_hashes: None,
                on_file: None,
            },
        );

        let hit = prefix_cacher.search_for_matching_cache(
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            None,
            None,
            None,
        )?;

        match hit {
            Some(MatchingCache::Normal { toks, offset, .. }) => {
                assert_eq!(offset, 10);
                assert_eq!(toks, vec![11]);
            }
            None => panic!("expected exact-extension prefix-cache hit"),
        }

        Ok(())
    }

    fn entry(cache: KvCache) -> CacheElement {
        CacheElement {
            cache: vec![Some(cache)],
            dtype: Some(DType::F32),
            recurrent_snapshots: None,
            audio_hashes: None,
            image_hashes: None,
            video_hashes: None,
            on_file: None,
        }
    }

    // Troupe patch: caches on the CPU are evicted down to `n_on_device`, oldest first.
    #[test]
    fn evicts_cpu_caches_beyond_the_limit() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(2, false, false);
        for i in 0..5u32 {
            prefix_cacher
                .caches
                .insert(vec![i, 1, 2].into(), entry(make_normal_kv_cache(3)?));
            prefix_cacher.evict_caches()?;
        }
        assert_eq!(prefix_cacher.caches.len(), 2);
        let kept: Vec<u32> = prefix_cacher.caches.keys().map(|k| k.0[0]).collect();
        assert_eq!(kept, vec![3, 4]);
        Ok(())
    }

    // Troupe patch: re-sending a cached prompt exactly (regenerate) reuses all but its last
    // token instead of missing.
    #[test]
    fn an_exact_repeat_reuses_all_but_the_last_token() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(4, false, false);
        prefix_cacher.caches.insert(
            vec![1, 2, 3, 4, 5, 6].into(),
            entry(make_normal_kv_cache(6)?),
        );
        match prefix_cacher.search_for_matching_cache(&[1, 2, 3, 4, 5, 6], None, None, None)? {
            Some(MatchingCache::Normal { toks, offset, .. }) => {
                assert_eq!(offset, 5);
                assert_eq!(toks, vec![6]);
            }
            None => panic!("expected a hit for an exact repeat"),
        }
        Ok(())
    }

    // Troupe patch: a hit hands out a copy, so the new sequence's writes do not reach the
    // stored entry.
    #[test]
    fn writing_to_a_hit_leaves_the_stored_entry_alone() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(4, false, false);
        // Longer than the match by more than `TAKE_TAIL`: another chat's entry, copied.
        let key: Vec<u32> = (1..=20).collect();
        prefix_cacher
            .caches
            .insert(key.into(), entry(make_normal_kv_cache(20)?));
        let Some(MatchingCache::Normal { mut normal, .. }) =
            prefix_cacher.search_for_matching_cache(&[1, 2, 99], None, None, None)?
        else {
            panic!("expected a hit");
        };
        let Some(KvCache::Normal { k, .. }) = normal[0].as_mut() else {
            panic!("expected a normal cache");
        };
        assert_eq!(k.current_seq_len, 2);
        k.append(&Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu)?)?;
        let stored = prefix_cacher.caches.values().next().unwrap();
        let Some(KvCache::Normal { k: stored_k, .. }) = stored.cache[0].as_ref() else {
            panic!("expected a normal cache");
        };
        let values: Vec<f32> = stored_k
            .all_data
            .as_ref()
            .unwrap()
            .flatten_all()?
            .to_vec1()?;
        assert_eq!(values, vec![0.0; 20], "the stored entry was overwritten");
        Ok(())
    }

    // Troupe patch: a request that continues an entry takes it over (no copy); the entry
    // leaves the cache and comes back, longer, when the request completes.
    #[test]
    fn a_continuation_takes_the_entry_over() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(4, false, false);
        prefix_cacher
            .caches
            .insert(vec![1, 2, 3].into(), entry(make_normal_kv_cache(3)?));
        match prefix_cacher.search_for_matching_cache(&[1, 2, 3, 4, 5], None, None, None)? {
            Some(MatchingCache::Normal { toks, offset, .. }) => {
                assert_eq!((offset, toks), (3, vec![4, 5]));
            }
            None => panic!("expected a hit"),
        }
        assert!(prefix_cacher.caches.is_empty());

        // A next turn matches the entry of the reply before it all but a few tokens (the
        // reply's end tokenized anew): it continues that entry too.
        let key: Vec<u32> = (1..=10).collect();
        prefix_cacher
            .caches
            .insert(key.into(), entry(make_normal_kv_cache(10)?));
        let next: Vec<u32> = (1..=8).chain([99, 100]).collect();
        match prefix_cacher.search_for_matching_cache(&next, None, None, None)? {
            Some(MatchingCache::Normal { toks, offset, .. }) => {
                assert_eq!((offset, toks), (8, vec![99, 100]));
            }
            None => panic!("expected a hit"),
        }
        assert!(prefix_cacher.caches.is_empty());
        Ok(())
    }

    // Troupe patch: an entry is kept in the stored form (the tokens written, F16 on the CPU) and
    // a hit gets the model's dtype back, with the same values as far as F16 holds them.
    #[test]
    fn entries_are_stored_compact_and_restored_to_the_models_dtype() -> candle_core::Result<()> {
        let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.25 - 0.5).collect();
        let src = Tensor::from_vec(values.clone(), (1, 1, 6, 1), &Device::Cpu)?;
        let mut k = SingleCache::new(2, 4096, 512);
        let mut v = SingleCache::new(2, 4096, 512);
        k.append(&src)?;
        v.append(&src)?;
        let live = KvCache::Normal { k, v };
        assert_eq!(
            live.bytes(),
            2 * NormalCache::CACHE_GROW_SIZE * 4,
            "the live cache holds its capacity, in F32"
        );
        let stored = live.stored()?;
        assert_eq!(stored.bytes(), 2 * 6 * 2, "six tokens in F16");
        let mut prefix_cacher = PrefixCacheManagerV2::new(4, false, false);
        let mut element = entry(stored);
        element.dtype = live.dtype();
        prefix_cacher
            .caches
            .insert(vec![1, 2, 3, 4, 5, 6].into(), element);
        let Some(MatchingCache::Normal {
            mut normal, offset, ..
        }) = prefix_cacher.search_for_matching_cache(&[1, 2, 3, 4, 5, 6, 7], None, None, None)?
        else {
            panic!("expected a hit");
        };
        assert_eq!(offset, 6);
        let Some(KvCache::Normal { k, .. }) = normal[0].as_mut() else {
            panic!("expected a normal cache");
        };
        let data = k.current_data()?.unwrap();
        assert_eq!(data.dtype(), DType::F32);
        assert_eq!(data.flatten_all()?.to_vec1::<f32>()?, values);
        // The sequence goes on writing past the stored length.
        k.append(&Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu)?)?;
        assert_eq!(k.current_seq_len, 7);
        Ok(())
    }

    // Troupe patch: storing an entry drops the entries whose tokens begin its own, and only
    // those.
    #[test]
    fn an_entry_replaces_those_it_extends() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(8, false, false);
        for key in [vec![1, 2], vec![1, 2, 3], vec![1, 9, 9], vec![5]] {
            prefix_cacher
                .caches
                .insert(key.into(), entry(make_normal_kv_cache(3)?));
        }
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let sampler = crate::sampler::Sampler::new(
            None,
            0,
            None,
            None,
            None,
            None,
            None,
            32,
            1.0,
            0.0,
            vec![],
        )
        .unwrap();
        let group = std::sync::Arc::new(tokio::sync::Mutex::new(
            crate::sequence::SequenceGroup::new(1, false, true, None),
        ));
        let mut seq = crate::sequence::Sequence::new_waiting(
            vec![1, 2, 3, 4],
            "prompt".to_string(),
            0,
            0,
            1,
            tx,
            sampler,
            vec![],
            vec![],
            None,
            false,
            false,
            group,
            0,
            0,
            crate::sequence::SequenceRecognizer::None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            crate::sequence::SeqStepType::PromptAndDecode,
            None,
            None,
            None,
            false,
            vec![],
        );
        let live = make_normal_kv_cache(4)?;
        *seq.normal_cache() = vec![Some(live)];
        prefix_cacher.add_sequence(&mut seq, None);
        let kept: Vec<Vec<u32>> = prefix_cacher.caches.keys().map(|k| k.0.clone()).collect();
        assert_eq!(kept, vec![vec![1, 9, 9], vec![5], vec![1, 2, 3, 4]]);
        Ok(())
    }

    // Troupe patch: the byte budget evicts the oldest entries first, and an entry larger than
    // the whole budget is not kept.
    #[test]
    fn the_byte_budget_evicts_oldest_first() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(10, false, false);
        for i in 0..4u32 {
            prefix_cacher
                .caches
                .insert(vec![i, 1, 2].into(), entry(make_normal_kv_cache(3)?));
        }
        let one = prefix_cacher.caches.values().next().unwrap().bytes();
        assert_eq!(prefix_cacher.evict_to_bytes(2 * one + 1), 2);
        let kept: Vec<u32> = prefix_cacher.caches.keys().map(|k| k.0[0]).collect();
        assert_eq!(kept, vec![2, 3]);
        assert_eq!(prefix_cacher.evict_to_bytes(one - 1), 2);
        assert!(prefix_cacher.caches.is_empty());
        Ok(())
    }

    // Troupe patch: a sequence that ended by length holds one token fewer in its KV than in its
    // key (the last sampled token never ran); a next turn that repeats the whole key reuses
    // what the KV holds and feeds the rest, rather than missing.
    #[test]
    fn a_hit_reuses_only_the_tokens_the_kv_holds() -> candle_core::Result<()> {
        let mut prefix_cacher = PrefixCacheManagerV2::new(4, false, false);
        let stored = make_normal_kv_cache(3)?.stored()?;
        prefix_cacher
            .caches
            .insert(vec![1, 2, 3, 4].into(), entry(stored));
        match prefix_cacher.search_for_matching_cache(&[1, 2, 3, 4, 5, 6], None, None, None)? {
            Some(MatchingCache::Normal { toks, offset, .. }) => {
                assert_eq!((offset, toks), (3, vec![4, 5, 6]));
            }
            None => panic!("expected a hit on the three tokens the KV holds"),
        }
        Ok(())
    }

    /// An anonymous file as the app makes one: created, then unlinked while open.
    fn spill_here() -> SpillFile {
        std::sync::Arc::new(|| {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("troupe-kv-{}-{n}", std::process::id()));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        })
    }

    fn values(cache: &KvCache) -> candle_core::Result<Vec<f32>> {
        let KvCache::Normal { k, .. } = cache else {
            panic!("expected a normal cache");
        };
        k.current_data()?
            .unwrap()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()
    }

    // Troupe patch: when a request starts, the entries it does not continue leave memory for
    // their files, still counted against the budget; a hit reads its entry back whole, and
    // the one a request continues is taken, never written.
    #[test]
    fn entries_not_in_use_leave_memory_and_come_back_whole() -> candle_core::Result<()> {
        let stored = |len: usize, start: f32| -> candle_core::Result<KvCache> {
            let values: Vec<f32> = (0..len).map(|i| start + i as f32 * 0.5).collect();
            let src = Tensor::from_vec(values, (1, 1, len, 1), &Device::Cpu)?;
            let mut k = SingleCache::new(2, 64, 16);
            let mut v = SingleCache::new(2, 64, 16);
            k.append(&src)?;
            v.append(&src)?;
            KvCache::Normal { k, v }.stored()
        };
        let mut prefix_cacher = PrefixCacheManagerV2::new(4, false, false);
        prefix_cacher.spill = Some(spill_here());
        prefix_cacher.caches.insert(
            (1..=20).collect::<Vec<u32>>().into(),
            entry(stored(20, 1.0)?),
        );
        prefix_cacher
            .caches
            .insert(vec![7, 8, 9].into(), entry(stored(3, -2.0)?));
        let bytes: Vec<usize> = prefix_cacher.caches.values().map(|e| e.bytes()).collect();

        // A request that matches nothing: both entries leave memory, their bytes still count.
        assert!(prefix_cacher
            .search_for_matching_cache(&[5, 5], None, None, None)?
            .is_none());
        for (element, bytes) in prefix_cacher.caches.values().zip(&bytes) {
            assert!(!element.in_memory(), "the entry stayed in memory");
            assert!(element.on_file.is_some());
            assert_eq!(element.bytes(), *bytes);
        }
        prefix_cacher.evict_caches()?;
        assert_eq!(
            prefix_cacher.caches.len(),
            2,
            "an entry on file was evicted"
        );

        // A hit that copies reads its entry back; the entry leaves memory again, unwritten.
        let Some(MatchingCache::Normal { normal, offset, .. }) =
            prefix_cacher.search_for_matching_cache(&[1, 2, 99], None, None, None)?
        else {
            panic!("expected a hit");
        };
        assert_eq!(offset, 2);
        assert_eq!(values(normal[0].as_ref().unwrap())?, vec![1.0, 1.5]);
        assert!(prefix_cacher.caches.values().all(|e| !e.in_memory()));

        // A continuation takes its entry, read back with every value.
        let Some(MatchingCache::Normal { normal, offset, .. }) =
            prefix_cacher.search_for_matching_cache(&[7, 8, 9, 10], None, None, None)?
        else {
            panic!("expected a hit");
        };
        assert_eq!(offset, 3);
        assert_eq!(values(normal[0].as_ref().unwrap())?, vec![-2.0, -1.5, -1.0]);
        assert_eq!(prefix_cacher.caches.len(), 1);
        Ok(())
    }
}
