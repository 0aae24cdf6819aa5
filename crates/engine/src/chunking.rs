//! Gearhash content-defined chunking (spec §2).
//!
//! The boundary rule, for one chunk starting at `start` (all lengths relative to `start`):
//! the rolling hash `h` starts at 0 and is fed the bytes from offset [`CHUNK_SKIP`] (8 127) on,
//! `h = (h << 1) + GEAR_TABLE[byte]`; the chunk ends right after the first byte at which
//! `h & GEAR_MASK == 0` *and* the chunk is at least [`MIN_CHUNK_SIZE`] bytes long (a match
//! at a shorter length is ignored and `h` is not reset), or at [`MAX_CHUNK_SIZE`] bytes, or
//! at the end of the input.
//!
//! Speed. A 64-bit gear hash only depends on the last 64 bytes fed to it, so the hash at
//! any position can be rebuilt from 64 bytes of context. The scanner uses that to run four
//! independent rolling hashes ("lanes") over four adjacent blocks of the same buffer in
//! lockstep: the serial `shift + add` chains of the lanes overlap, so the loop is limited by
//! instruction throughput rather than by the latency of one chain (about 2x the speed of
//! the definition's single chain). A match seen in a later lane is only accepted after the
//! earlier lanes have finished their (earlier) blocks without a match, so the first match
//! in byte order is always the one returned. The first 8 127 bytes of every chunk are never
//! looked at.

use crate::constants::{CHUNK_SKIP, GEAR_MASK, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::hash::{DATA_KEY, XetHash, chunk_hash, file_hash};

/// The 256-entry gear table (`gearhash::DEFAULT_TABLE`, `vectors/gear_table.json`).
#[rustfmt::skip]
pub const GEAR_TABLE: [u64; 256] = [
    0xb088_d3a9_e840_f559, 0x5652_c7f7_39ed_20d6, 0x45b2_8969_8989_72ab, 0x6b0a_89d5_b68e_c777,
    0x368f_573e_8b7a_31b7, 0x1dc6_36dc_e936_d94b, 0x207a_4c4e_5554_d5b6, 0xa474_b346_2823_9acb,
    0x3b06_a83e_1ca3_b912, 0x90e7_8d6c_2f02_baf7, 0xe1c9_2df7_150d_9a8a, 0x8e95_053a_1086_d3ad,
    0x5a2e_f4f1_b83a_0722, 0xa50f_ac94_9f80_7fae, 0x0e73_03eb_80d8_d681, 0x99b0_7edc_1570_ad0f,
    0x689d_2fb5_55fd_3076, 0x0000_5082_119e_a468, 0xc4b0_8306_a88f_cc28, 0x3eb0_678a_f637_4afd,
    0xf19f_87ab_86ad_7436, 0xf212_9fbf_be6b_c736, 0x4811_4957_5c98_a4ed, 0x0000_0106_9547_7bc5,
    0x1fba_3780_1a9c_eacc, 0x3bf0_6fd6_63a4_9b6d, 0x9968_7e97_82e3_874b, 0x79a1_0673_aa50_d8e3,
    0xe4ac_cf9e_6211_f420, 0x2520_e71f_8757_9071, 0x2bd5_d3fd_781a_8a9b, 0x00de_4dcd_dd11_c873,
    0xeaa9_311c_5a87_392f, 0xdb74_8eb6_17bc_40ff, 0xaf57_9a8d_f620_bf6f, 0x86a6_e5da_1b09_c2b1,
    0xcc2f_c30a_c322_a12e, 0x355e_2afe_c1f7_4267, 0x2d99_c8f4_c021_a47b, 0xbade_4b4a_9404_cfc3,
    0xf7b5_1872_1d70_7d69, 0x3286_b658_7bf3_2c20, 0x0000_b688_86af_270c, 0xa115_d6e4_db8a_9079,
    0x484f_7e9c_97b2_e199, 0xccca_7bb7_5713_e301, 0xbf25_84a6_2bb0_f160, 0xade7_e813_625d_bcc8,
    0x0000_7094_0d87_955a, 0x8ae6_9108_139e_626f, 0xbd77_6ad7_2fde_38a2, 0xfb6b_001f_c2fc_c0cf,
    0xc7a4_74b8_e67b_c427, 0xbaf6_f116_10eb_5d58, 0x09cb_1f5b_6de7_70d1, 0xb0b2_19e6_977d_4c47,
    0x00cc_bc38_6ea7_ad4a, 0xcc84_9d0a_df97_3f01, 0x73a3_ef7d_016a_f770, 0xc807_d2d3_86bd_bdfe,
    0x7f2a_c996_6c79_1730, 0xd037_a86b_c6c5_04da, 0xf3f1_7c66_1eaa_609d, 0xaca6_26b0_4daa_e687,
    0x755a_9937_4f4a_5b07, 0x9083_7ee6_5b2c_aede, 0x6ee8_ad93_fd56_0785, 0x0000_d9e1_1053_edd8,
    0x9e06_3bb2_d21c_dbd7, 0x07ab_77f1_2a01_d2b2, 0xec55_0255_e664_1b44, 0x78fb_94a8_449c_14c6,
    0xc751_0e1b_c6c0_f5f5, 0x0000_320b_36e4_cae3, 0x827c_3326_2c8b_1a2d, 0x1467_5f0b_48ea_4144,
    0x267b_d3a6_498d_eceb, 0xf191_6ff9_82f5_035e, 0x8622_1b7f_f434_fb88, 0x9dbe_cee7_386f_49d8,
    0xea58_f8ca_c80f_8f4a, 0x008d_1986_92fc_64d8, 0x6d38_704f_babf_9a36, 0xe032_cb07_d1e7_be4c,
    0x228d_21f6_ad45_0890, 0x635c_b1bf_c025_89a5, 0x4620_a173_9ca2_ce71, 0xa7e7_dfe3_aae5_fb58,
    0x0c10_ca93_2b3c_0deb, 0x2727_fee8_84af_ed7b, 0xa2df_1c6d_f9e2_ab1f, 0x4dcd_d1ac_0774_f523,
    0x0000_70ff_ad33_e24e, 0xa2ac_e87b_c597_7816, 0x9892_275a_b428_6049, 0xc286_1181_ddf1_8959,
    0xbb99_72a0_4248_3e19, 0xef70_cd37_6651_3078, 0x0000_0513_abfc_9864, 0xc058_b618_58c9_4083,
    0x09e8_5085_9725_e0de, 0x9197_fb3b_f83e_7d94, 0x7e1e_626d_12b6_4bce, 0x520c_5450_7f7b_57d1,
    0xbee1_7971_74e2_2416, 0x6fd9_ac32_22e9_5587, 0x0023_957c_9adf_bf3e, 0xa01c_7d7e_234b_be15,
    0xaba2_c758_b8a3_8cbb, 0x0d1f_a0ce_ec3e_2b30, 0x0bb6_a58b_7e60_b991, 0x4333_dd5b_9fa2_6635,
    0xc2fd_3b7d_4001_c1a3, 0xfb41_8024_5473_1127, 0x65a5_6185_a50d_18cb, 0xf67a_02bd_8784_b54f,
    0x696f_11dd_67e6_5063, 0x0000_2022_fca8_14ab, 0x8cd6_be91_2db9_d852, 0x6951_89b6_e9ae_8a57,
    0xee94_53b5_0ada_0c28, 0xd8fc_5ea9_1a78_845e, 0xab86_bf19_1a4a_a767, 0x0000_c6b5_c864_15e5,
    0x2673_1017_8e08_a22e, 0xed2d_101b_078b_ca25, 0x3b41_ed84_b226_a8fb, 0x13e6_2212_0f28_dc06,
    0xa315_f5eb_fb70_6d26, 0x8816_c34e_3301_bace, 0xe939_5b9c_bb71_fdae, 0x002c_e920_2e72_1648,
    0x4283_db1d_2bb3_c91c, 0xd77d_461a_d2b1_a6a5, 0xe2ec_17e4_6eeb_866b, 0xb8e0_be40_39fb_c47c,
    0xdea1_60c4_d529_9d04, 0x7eec_86c8_d28c_3634, 0x2119_ad12_9f98_a399, 0xa6cc_f46b_61a2_83ef,
    0x2c52_cede_f658_c617, 0x2db4_8711_69ac_dd83, 0x0000_f0d6_f39e_cbe9, 0x3dd5_d8c9_8d2f_9489,
    0x8a18_72a2_2b01_f584, 0xf282_a4c4_0e7b_3cf2, 0x8020_ec2c_cb1b_a196, 0x6693_b6e0_9e59_e313,
    0x0000_ce19_cc7c_83eb, 0x20cb_5735_f647_9c3b, 0x762e_bf37_59d7_5a5b, 0x207b_fe82_3d69_3975,
    0xd77d_c112_339c_d9d5, 0x9ba7_8342_8462_7d03, 0x217d_c513_e95f_51e9, 0xb27b_1a29_fc5e_7816,
    0x00d5_cd98_31bb_662d, 0x71e3_9b80_6d75_734c, 0x7e57_2af0_06fb_1a23, 0xa273_4f2f_6ae9_1f85,
    0xbf82_c6b5_022c_ddf2, 0x5c3b_eac6_0761_a0de, 0xcdc8_93bb_4741_6998, 0x6d10_8561_5c18_7e01,
    0x77f8_ae30_ac27_7c5d, 0x917c_6b81_122a_2c91, 0x5b75_b699_add1_6967, 0x0000_cf6a_e79a_069b,
    0xf3c4_0afa_60de_1104, 0x2063_127a_a591_67c3, 0x621d_e622_69d1_894d, 0xd188_ac1d_e62b_4726,
    0x1070_36e2_154b_673c, 0x0000_b85f_2855_3a1d, 0xf2ef_4e4c_1823_6f3d, 0xd9d6_de66_11b9_f602,
    0xa1fc_7955_fb47_911c, 0xeb85_fd03_2f29_8dbd, 0xbe27_502f_b3be_fae1, 0xe303_4251_c4cd_661e,
    0x4413_64d3_5407_1836, 0x0082_b36c_75f2_983e, 0xb145_9103_16fa_66f0, 0x021c_069c_9847_caf7,
    0x2910_dfc7_5a4b_5221, 0x735b_353e_1c57_a8b5, 0xce44_312c_e98e_d96c, 0xbc94_2e45_06bd_fa65,
    0xf050_86a7_1257_941b, 0xfec3_b215_d351_cead, 0x00ae_1055_e014_4202, 0xf54b_4084_6f42_e454,
    0x0000_7fd9_c8bc_bcc8, 0xbfbd_9ef3_17de_9bfe, 0xa804_302f_f285_4e12, 0x39ce_4957_a5e5_d8d4,
    0xffb9_e2a4_5637_ba84, 0x55b9_ad1d_9ea0_818b, 0x0000_8acb_f319_178a, 0x48e2_bfc8_d0fb_fb38,
    0x8be3_9841_e848_b5e8, 0x0e27_1216_0696_a08b, 0xd510_96e8_4b44_242a, 0x1101_ba17_6792_e13a,
    0xc22e_770f_4531_689d, 0x1689_eff2_72bb_c56c, 0x00a9_2a19_7f56_50ec, 0xbc76_5990_bda1_784e,
    0xc614_41e3_92fc_b8ae, 0x07e1_3a2c_ed31_e4a0, 0x92cb_e984_234e_9d4d, 0x8f4f_f572_bb7d_8ac5,
    0x0b96_70c0_0b96_3bd0, 0x6295_5a58_1a03_eb01, 0x645f_83e5_ea00_0254, 0x41fc_e516_cd88_f299,
    0xbbda_9748_da7a_98cf, 0x0000_aab2_fe48_45fa, 0x1976_1b06_9bf5_6555, 0x8b8f_5e83_43b6_ad56,
    0x3e5d_1cfd_1448_21d9, 0xec5c_1e2c_a2b0_cd8f, 0xfaf7_e0fe_a7fb_b57f, 0x0000_00d3_ba12_961b,
    0xda3f_9017_8401_b18e, 0x70ff_906d_e33a_5feb, 0x0527_d5a7_c069_70e7, 0x22d8_e773_607c_13e9,
    0xc9ab_70df_643c_3bac, 0xeda4_c6dc_8abe_12e3, 0xecef_1f41_0033_e78a, 0x0024_c2b2_74ac_72cb,
    0x0674_0d95_4fa9_00b4, 0x1d7a_299b_323d_6304, 0xb3c3_7cb2_98cb_ead5, 0xc986_e3c7_6178_739b,
    0x9fab_ea36_4b46_f58a, 0x6da2_14c5_af85_cc56, 0x17a4_3ed8_b7a3_8f84, 0x6ecc_ec51_1d9a_dbeb,
    0xf9ca_b309_1333_5afb, 0x4a5e_60c5_f415_eed2, 0x0000_6967_5036_72b4, 0x9da5_1d12_1454_bb87,
    0x8432_1e13_b9bb_c816, 0xfb3d_6fb6_ab2f_dd8d, 0x6030_5eed_8e16_0a8d, 0xcbbf_4b14_e994_6ce8,
    0x0000_4f63_381b_10c3, 0x07d5_b781_6fcc_4e10, 0xe5a5_3672_6a6a_8155, 0x57af_b234_47a0_7fdd,
    0x18f3_46f7_abc9_d394, 0x636d_c655_d61a_d33d, 0xcc8b_ab49_39f7_f3f6, 0x63c7_a906_c1dd_187b,
];

/// Bytes of context that fully determine the rolling hash.
const WINDOW: usize = 64;

/// Independent rolling hashes run in lockstep by the scanner.
const LANES: usize = 4;
/// Length of each lane's block (multiple of 8, well above `WINDOW`).
const LANE_BLOCK: usize = 2048;
/// Bytes scanned per round of the lanes.
const SUPERBLOCK: usize = LANES * LANE_BLOCK;
// `lockstep_all` and `superblock_first_match` are written for four lanes.
const _: () = assert!(LANES == 4 && LANE_BLOCK % 8 == 0 && LANE_BLOCK > WINDOW);

#[inline(always)]
fn roll(h: u64, byte: u8) -> u64 {
    (h << 1).wrapping_add(GEAR_TABLE[byte as usize])
}

#[inline(always)]
fn is_match(h: u64) -> bool {
    h & GEAR_MASK == 0
}

/// Feeds every byte of `bytes` to `h` without checking for matches.
#[inline]
fn roll_all(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = roll(h, b);
    }
    h
}

/// Outcome of scanning a run of bytes in which every position is a candidate boundary.
enum Scan {
    /// A match right after `bytes[..n]`.
    Cut(usize),
    /// No match; the rolling hash after the last byte.
    Continue(u64),
}

/// One rolling hash, checked after every byte.
#[inline]
fn scan_single(mut h: u64, bytes: &[u8]) -> Scan {
    let mut blocks = bytes.chunks_exact(8);
    let mut base = 0;
    for block in &mut blocks {
        for (k, &b) in block.iter().enumerate() {
            h = roll(h, b);
            if is_match(h) {
                return Scan::Cut(base + k + 1);
            }
        }
        base += 8;
    }
    for (k, &b) in blocks.remainder().iter().enumerate() {
        h = roll(h, b);
        if is_match(h) {
            return Scan::Cut(base + k + 1);
        }
    }
    Scan::Continue(h)
}

/// All lanes of a superblock in lockstep from the start of their blocks. Returns the first
/// match as (lane, offset in the lane's block right after the matching byte): the earliest
/// step, and the lowest lane at that step. On return `hs` holds each lane's state (for the
/// lanes below the matching one: right after the matching step).
#[inline(always)]
fn lockstep_all(hs: &mut [u64; LANES], sb: &[u8]) -> Option<(usize, usize)> {
    let (b0, rest) = sb.split_at(LANE_BLOCK);
    let (b1, rest) = rest.split_at(LANE_BLOCK);
    let (b2, b3) = rest.split_at(LANE_BLOCK);
    let [mut h0, mut h1, mut h2, mut h3] = *hs;
    let lanes = b0
        .chunks_exact(8)
        .zip(b1.chunks_exact(8))
        .zip(b2.chunks_exact(8))
        .zip(b3.chunks_exact(8));
    for (j, (((c0, c1), c2), c3)) in lanes.enumerate() {
        for k in 0..8 {
            let t = [
                GEAR_TABLE[c0[k] as usize],
                GEAR_TABLE[c1[k] as usize],
                GEAR_TABLE[c2[k] as usize],
                GEAR_TABLE[c3[k] as usize],
            ];
            h0 = (h0 << 1).wrapping_add(t[0]);
            h1 = (h1 << 1).wrapping_add(t[1]);
            h2 = (h2 << 1).wrapping_add(t[2]);
            h3 = (h3 << 1).wrapping_add(t[3]);
            if is_match(h0) | is_match(h1) | is_match(h2) | is_match(h3) {
                // Codegen hint only: a second use of the table values keeps them in
                // registers, so that each step compiles to one `lea` (h * 2 + t) instead
                // of `add h, h` + `add h, [table]`; this path runs about once per chunk.
                std::hint::black_box(t);
                *hs = [h0, h1, h2, h3];
                let lane = hs.iter().position(|&h| is_match(h)).unwrap_or(0);
                return Some((lane, j * 8 + k + 1));
            }
        }
    }
    *hs = [h0, h1, h2, h3];
    None
}

/// Continues lanes `0..K` from offset `from` of their blocks to the block end (the path
/// after a match in lane `K`); same result convention as [`lockstep_all`].
fn lockstep_rest<const K: usize>(
    hs: &mut [u64; LANES],
    sb: &[u8],
    from: usize,
) -> Option<(usize, usize)> {
    let sb = &sb[..SUPERBLOCK];
    let mut h: [u64; K] = std::array::from_fn(|l| hs[l]);
    let mut hit = None;
    'scan: for i in from..LANE_BLOCK {
        for (l, hl) in h.iter_mut().enumerate() {
            *hl = roll(*hl, sb[l * LANE_BLOCK + i]);
            if is_match(*hl) {
                hit = Some((l, i + 1));
                break 'scan;
            }
        }
    }
    hs[..K].copy_from_slice(&h);
    hit
}

/// The first match in a superblock (offset right after the matching byte), given the state
/// of every lane at the start of its block.
fn superblock_first_match(hs: &mut [u64; LANES], sb: &[u8]) -> Option<usize> {
    let mut hit = lockstep_all(hs, sb);
    let mut best = None;
    // A match in lane `l` at offset `s` rules out every later lane; the lanes before `l`
    // are continued after `s` to see whether one of them matches earlier in byte order.
    while let Some((lane, s)) = hit {
        best = Some(lane * LANE_BLOCK + s);
        if lane == 0 {
            break;
        }
        hit = match lane {
            1 => lockstep_rest::<1>(hs, sb, s),
            2 => lockstep_rest::<2>(hs, sb, s),
            _ => lockstep_rest::<3>(hs, sb, s),
        };
    }
    best
}

/// Like [`scan_single`] (same result for the same `h` and `bytes`), several lanes at a time.
///
/// `h` must be the rolling hash over at least the `WINDOW` bytes preceding `bytes` (or the
/// whole hashed prefix of the chunk when shorter), i.e. the true state of the definition.
fn scan(mut h: u64, bytes: &[u8]) -> Scan {
    let mut pos = 0;
    while bytes.len() - pos >= SUPERBLOCK {
        let sb = &bytes[pos..pos + SUPERBLOCK];
        // Lane l > 0 starts from the 64 bytes before its block, which give the exact state
        // there: those bytes lie inside this scan region, hence in the hashed part of the
        // chunk.
        let mut hs = [h; LANES];
        for (l, hl) in hs.iter_mut().enumerate().skip(1) {
            *hl = roll_all(0, &sb[l * LANE_BLOCK - WINDOW..l * LANE_BLOCK]);
        }
        if let Some(n) = superblock_first_match(&mut hs, sb) {
            return Scan::Cut(pos + n);
        }
        h = hs[LANES - 1];
        pos += SUPERBLOCK;
    }
    match scan_single(h, &bytes[pos..]) {
        Scan::Cut(n) => Scan::Cut(pos + n),
        cont => cont,
    }
}

/// Streaming gearhash CDC (spec §2). Feeding the data in any pieces gives the same chunks.
#[derive(Debug, Clone, Default)]
pub struct Chunker {
    /// Rolling hash of the current chunk (0 until byte [`CHUNK_SKIP`] of the chunk).
    h: u64,
    /// Bytes of the current, unfinished chunk seen so far (always < [`MAX_CHUNK_SIZE`]).
    pending: usize,
}

impl Chunker {
    /// A chunker at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues the current chunk over `data`. Returns `Some(n)` (1 <= n <= data.len()) when
    /// the current chunk ends after `data[..n]` (the chunker resets; call again with
    /// `data[n..]`), or `None` when all of `data` belongs to the still-unfinished chunk.
    pub fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        let room = MAX_CHUNK_SIZE - self.pending;
        let limit = data.len().min(room);
        // Bytes before `hash_from` are in the skipped prefix of the chunk; a match after
        // byte i counts when the chunk length `pending + i + 1` reaches MIN_CHUNK_SIZE.
        let hash_from = CHUNK_SKIP.saturating_sub(self.pending).min(limit);
        let check_from = (MIN_CHUNK_SIZE - 1)
            .saturating_sub(self.pending)
            .clamp(hash_from, limit);
        let h = roll_all(self.h, &data[hash_from..check_from]);
        let h = match scan(h, &data[check_from..limit]) {
            Scan::Cut(n) => {
                self.reset();
                return Some(check_from + n);
            }
            Scan::Continue(h) => h,
        };
        if limit == room {
            self.reset();
            return Some(limit);
        }
        self.h = h;
        self.pending += limit;
        None
    }

    /// Bytes accumulated in the current unfinished chunk (0 right after a boundary).
    pub fn pending_len(&self) -> usize {
        self.pending
    }

    /// Ends the input: returns the length of the final chunk (`None` when there is no
    /// unfinished chunk) and resets the chunker for a new file.
    pub fn finish(&mut self) -> Option<usize> {
        let pending = self.pending;
        self.reset();
        (pending > 0).then_some(pending)
    }

    /// Appends to `out` the offsets in `data` right after which a chunk ends (what repeated
    /// [`next_boundary`](Self::next_boundary) calls return, as offsets into `data`).
    pub fn boundaries_into(&mut self, data: &[u8], out: &mut Vec<usize>) {
        let mut offset = 0;
        while let Some(n) = self.next_boundary(&data[offset..]) {
            offset += n;
            out.push(offset);
        }
    }

    fn reset(&mut self) {
        self.h = 0;
        self.pending = 0;
    }
}

/// End offsets of all chunks of a whole buffer (the last one is data.len(); empty -> []).
pub fn chunk_boundaries(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::with_capacity(data.len() / (MIN_CHUNK_SIZE * 4) + 2);
    let mut chunker = Chunker::new();
    chunker.boundaries_into(data, &mut out);
    if chunker.finish().is_some() {
        out.push(data.len());
    }
    out
}

/// Chunk hashes of a stream whose chunk boundaries are already known (the hashing half of
/// [`FileHasher`], usable on another thread than the [`Chunker`]).
#[derive(Debug, Clone)]
pub struct ChunkHashStream {
    /// Hasher of the chunk that continues across `update` calls.
    partial: blake3::Hasher,
    /// Bytes already fed to `partial`.
    partial_len: u64,
    chunks: Vec<(XetHash, u64)>,
}

impl Default for ChunkHashStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkHashStream {
    /// An empty stream.
    pub fn new() -> Self {
        ChunkHashStream {
            partial: blake3::Hasher::new_keyed(&DATA_KEY),
            partial_len: 0,
            chunks: Vec::new(),
        }
    }

    /// Feeds the next `data` of the stream; `cuts` are the ascending offsets in `data`
    /// (`0 < cut <= data.len()`) right after which a chunk ends. Offsets out of order or
    /// beyond `data` are ignored.
    pub fn update(&mut self, data: &[u8], cuts: &[usize]) {
        let mut start = 0;
        for &cut in cuts {
            if cut <= start || cut > data.len() {
                continue;
            }
            let piece = &data[start..cut];
            if self.partial_len == 0 {
                self.chunks.push((chunk_hash(piece), piece.len() as u64));
            } else {
                self.partial.update(piece);
                let hash = XetHash::from_bytes(*self.partial.finalize().as_bytes());
                self.chunks
                    .push((hash, self.partial_len + piece.len() as u64));
                self.partial.reset();
                self.partial_len = 0;
            }
            start = cut;
        }
        let rest = &data[start..];
        if !rest.is_empty() {
            self.partial.update(rest);
            self.partial_len += rest.len() as u64;
        }
    }

    /// Chunks completed so far (hash, length), in stream order.
    pub fn chunks(&self) -> &[(XetHash, u64)] {
        &self.chunks
    }

    /// Ends the stream (whatever was fed since the last cut is the final chunk) and returns
    /// every chunk's (hash, length).
    pub fn finish(mut self) -> Vec<(XetHash, u64)> {
        if self.partial_len > 0 {
            let hash = XetHash::from_bytes(*self.partial.finalize().as_bytes());
            self.chunks.push((hash, self.partial_len));
        }
        self.chunks
    }
}

/// Streaming Xet file hash (spec §3.4) of data fed in any pieces: chunking, chunk hashes and
/// the Merkle file hash, in constant memory apart from one (hash, size) pair per chunk.
#[derive(Debug, Clone, Default)]
pub struct FileHasher {
    chunker: Chunker,
    stream: ChunkHashStream,
    cuts: Vec<usize>,
    size: u64,
}

impl FileHasher {
    /// A hasher at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        self.cuts.clear();
        self.chunker.boundaries_into(data, &mut self.cuts);
        self.stream.update(data, &self.cuts);
        self.size += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's chunks (hash, length) in file order.
    pub fn finish_chunks(self) -> Vec<(XetHash, u64)> {
        self.stream.finish()
    }

    /// The file hash (all-zero for an empty file).
    pub fn finish(self) -> XetHash {
        file_hash(&self.finish_chunks())
    }
}

/// Xet file hash of a whole buffer.
pub fn file_hash_of(data: &[u8]) -> XetHash {
    let mut hasher = FileHasher::new();
    hasher.update(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition of spec §2.3, one byte at a time.
    fn reference_boundaries(data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let mut h = 0u64;
            let mut i = start + CHUNK_SKIP;
            let limit = data.len().min(start + MAX_CHUNK_SIZE);
            let mut end = limit;
            while i < limit {
                h = (h << 1).wrapping_add(GEAR_TABLE[data[i] as usize]);
                i += 1;
                if h & GEAR_MASK == 0 && i - start >= MIN_CHUNK_SIZE {
                    end = i;
                    break;
                }
            }
            out.push(end);
            start = end;
        }
        out
    }

    fn xof(label: &str, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        blake3::Hasher::new()
            .update(label.as_bytes())
            .finalize_xof()
            .fill(&mut b);
        b
    }

    #[test]
    fn gear_table_matches_spec_digest() {
        use sha2::{Digest, Sha256};
        let mut sha = Sha256::new();
        for v in GEAR_TABLE {
            sha.update(v.to_le_bytes());
        }
        assert_eq!(
            hex::encode(sha.finalize()),
            "e1d3936666d7ae7a977c958e9afcc75f90aaca758ce5fbe4ece61dffefe1912c"
        );
        assert_eq!(GEAR_TABLE[0], 0xb088d3a9e840f559);
        assert_eq!(GEAR_TABLE[255], 0x63c7a906c1dd187b);
    }

    #[test]
    fn matches_reference_on_random_data() {
        let data = xof("chunking/unit/random", 3 << 20);
        let got = chunk_boundaries(&data);
        assert_eq!(got, reference_boundaries(&data));
        assert!(got.len() > 20);
    }

    #[test]
    fn lane_scanner_equals_single_lane() {
        // Low-entropy data matches often, so matches land in both lanes and at block edges.
        let mut data = xof("chunking/unit/lanes", 1 << 20);
        for (i, b) in data.iter_mut().enumerate() {
            *b &= if (i / 5000) % 2 == 0 { 0x03 } else { 0xff };
        }
        for start in [0usize, 1, 7, 100, 4095, 4096, 8191] {
            let mut h = roll_all(0, &data[start..start + WINDOW]);
            let mut pos = start + WINDOW;
            let mut cuts = 0;
            while pos < data.len() {
                let fast = scan(h, &data[pos..]);
                let slow = scan_single(h, &data[pos..]);
                match (fast, slow) {
                    (Scan::Cut(a), Scan::Cut(b)) => {
                        assert_eq!(a, b, "start {start} pos {pos}");
                        h = roll_all(0, &data[pos + a - WINDOW..pos + a]);
                        pos += a;
                        cuts += 1;
                    }
                    (Scan::Continue(a), Scan::Continue(b)) => {
                        assert_eq!(a, b);
                        break;
                    }
                    _ => panic!("scanners disagree at {pos}"),
                }
            }
            assert!(cuts > 10, "test data must produce matches ({cuts})");
        }
    }

    #[test]
    fn small_inputs_are_one_chunk() {
        assert!(chunk_boundaries(&[]).is_empty());
        for n in [1, 100, 8191, 8192] {
            let data = xof("chunking/unit/small", n);
            assert_eq!(chunk_boundaries(&data), vec![n]);
        }
    }

    #[test]
    fn zeros_cut_at_max() {
        // Zero bytes never match: the hash of 64 zero bytes is a fixed non-matching value.
        let data = vec![0u8; 3 * MAX_CHUNK_SIZE + 5];
        assert_eq!(
            chunk_boundaries(&data),
            vec![
                MAX_CHUNK_SIZE,
                2 * MAX_CHUNK_SIZE,
                3 * MAX_CHUNK_SIZE,
                data.len()
            ]
        );
    }

    #[test]
    fn streaming_pieces_give_same_boundaries() {
        let data = xof("chunking/unit/stream", 2 << 20);
        let expected = chunk_boundaries(&data);
        for piece in [1usize, 63, 4103, 65536, 1 << 20] {
            let mut chunker = Chunker::new();
            let mut got = Vec::new();
            let mut base = 0;
            for part in data.chunks(piece) {
                let mut cuts = Vec::new();
                chunker.boundaries_into(part, &mut cuts);
                got.extend(cuts.iter().map(|c| base + c));
                base += part.len();
            }
            if let Some(n) = chunker.finish() {
                assert_eq!(n, data.len() - got.last().copied().unwrap_or(0));
                got.push(data.len());
            }
            assert_eq!(got, expected, "piece size {piece}");
        }
    }

    #[test]
    fn next_boundary_contract() {
        let data = xof("chunking/unit/contract", 600_000);
        let mut chunker = Chunker::new();
        assert_eq!(chunker.next_boundary(&[]), None);
        assert_eq!(chunker.pending_len(), 0);
        assert_eq!(chunker.next_boundary(&data[..5000]), None);
        assert_eq!(chunker.pending_len(), 5000);
        let n = chunker.next_boundary(&data[5000..]).unwrap();
        assert!(n >= 1 && 5000 + n >= MIN_CHUNK_SIZE && 5000 + n <= MAX_CHUNK_SIZE);
        assert_eq!(chunker.pending_len(), 0);
        assert_eq!(chunk_boundaries(&data)[0], 5000 + n);
    }

    #[test]
    fn chunk_hash_stream_handles_cuts_across_pieces() {
        let data = xof("chunking/unit/hashstream", 700_000);
        let bounds = chunk_boundaries(&data);
        let mut expected = Vec::new();
        let mut start = 0;
        for &end in &bounds {
            expected.push((chunk_hash(&data[start..end]), (end - start) as u64));
            start = end;
        }
        for piece in [1000usize, 4103, 100_000, data.len()] {
            let mut fh = FileHasher::new();
            for part in data.chunks(piece) {
                fh.update(part);
            }
            assert_eq!(fh.size(), data.len() as u64);
            assert_eq!(fh.finish_chunks(), expected, "piece {piece}");
        }
        assert_eq!(file_hash_of(&data), file_hash(&expected));
        assert_eq!(file_hash_of(&[]), XetHash::ZERO);
    }
}
