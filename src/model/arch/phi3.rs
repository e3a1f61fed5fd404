//! Phi-3 (`phi3`): the Llama layer ([`super::llama`]) with the query, key and value
//! projections stored as one matrix (`qkv_proj`: rows q, then k, then v) and the MLP's gate
//! and up projections as one (`gate_up_proj`: rows gate, then up), split here into the
//! decoder's separate layers. No biases. Its LongRoPE scaling and sliding window are config
//! fields the engine applies.
//!
//! A partial rotary embedding (`partial_rotary_factor < 1`: RoPE on the first `r` dimensions
//! of each head, "rotate half" within them, the rest passed through) is mapped onto the
//! full-width rotation the decoder ops compute by reordering each query and key head's rows:
//! rotated pairs `(i, r/2 + i)` go to `(i, d/2 + i)`, the pass-through dimensions fill the
//! remaining slots, whose frequencies are 0 (cos 1, sin 0). Queries and keys are reordered
//! alike, so every score `q·k` (and hence the output) is unchanged. Only says which weights
//! exist; must not run anything itself.
use super::decoder::{Attention, Block, FeedForward, Mlp};
use super::ops::Linear;
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::Result;

/// The row order that puts a head of width `d` with `r` rotary dimensions in the decoder's
/// full-width layout: entry `j` is the original row at new row `j` (identity when `r = d`).
pub(crate) fn rotary_rows(d: usize, r: usize) -> Vec<usize> {
    let (hd, hr, pass) = (d / 2, r / 2, (d - r) / 2);
    (0..d)
        .map(|j| match j {
            j if j < hr => j,
            j if j < hd => r + (j - hr),
            j if j < hd + hr => hr + (j - hd),
            j => r + pass + (j - hd - hr),
        })
        .collect()
}

/// Rows `start..start + heads * d` of a fused projection, each head reordered for `r` rotary
/// dimensions.
fn head_rows(start: usize, heads: usize, d: usize, r: usize) -> Vec<usize> {
    let one = rotary_rows(d, r);
    (0..heads)
        .flat_map(|h| one.iter().map(move |&j| start + h * d + j))
        .collect()
}

/// Loads decoder block `l` of a Phi-3 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let p = format!("model.layers.{l}");
    let (h, d, r, eps) = (
        cfg.hidden_size,
        cfg.head_dim,
        cfg.rotary_dim,
        cfg.rms_norm_eps,
    );
    let (nq, nkv, inner) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.intermediate_size,
    );
    let fused = format!("{p}.self_attn.qkv_proj");
    let (q, k, v) = if w.contains(&format!("{fused}.weight")) {
        let qkv = w.linear(&fused, h, (nq + 2 * nkv) * d, false)?;
        let v_rows: Vec<usize> = ((nq + nkv) * d..(nq + 2 * nkv) * d).collect();
        (
            qkv.take_rows(&head_rows(0, nq, d, r))?,
            qkv.take_rows(&head_rows(nq * d, nkv, d, r))?,
            qkv.take_rows(&v_rows)?,
        )
    } else {
        // GGUF files may store the three projections apart (llama.cpp reads either).
        let one = |name: &str, rows: usize| -> Result<Linear> {
            w.linear(&format!("{p}.self_attn.{name}"), h, rows, false)
        };
        (
            one("q_proj", nq * d)?.take_rows(&head_rows(0, nq, d, r))?,
            one("k_proj", nkv * d)?.take_rows(&head_rows(0, nkv, d, r))?,
            one("v_proj", nkv * d)?,
        )
    };
    let gate_up = w.linear(&format!("{p}.mlp.gate_up_proj"), h, 2 * inner, false)?;
    let gate_rows: Vec<usize> = (0..inner).collect();
    let up_rows: Vec<usize> = (inner..2 * inner).collect();
    Ok(Block {
        input_norm: w.rms_norm(&format!("{p}.input_layernorm"), h, eps)?,
        attn: Attention {
            q,
            k,
            v,
            o: w.linear(&format!("{p}.self_attn.o_proj"), nq * d, h, false)?,
            q_norm: None,
            k_norm: None,
            n_heads: nq,
            n_kv_heads: nkv,
            head_dim: d,
            q_scale: None,
            softcap: None,
        },
        post_attention_norm: w.rms_norm(&format!("{p}.post_attention_layernorm"), h, eps)?,
        ffn: FeedForward::Dense(Mlp {
            gate: gate_up.take_rows(&gate_rows)?,
            up: gate_up.take_rows(&up_rows)?,
            down: w.linear(&format!("{p}.mlp.down_proj"), inner, h, false)?,
            act: cfg.activation,
        }),
        attn_out_norm: None,
        mlp_out_norm: None,
    })
}

#[cfg(test)]
mod tests {
    use super::rotary_rows;

    #[test]
    fn rotary_rows_move_rotated_pairs_to_the_halves() {
        assert_eq!(rotary_rows(8, 8), (0..8).collect::<Vec<_>>());
        // d 16, r 12: pairs (i, 6 + i) → (i, 8 + i); pass-through 12..16 fill 6, 7, 14, 15.
        assert_eq!(
            rotary_rows(16, 12),
            vec![0, 1, 2, 3, 4, 5, 12, 13, 6, 7, 8, 9, 10, 11, 14, 15]
        );
        let mut seen = rotary_rows(16, 4);
        seen.sort();
        assert_eq!(seen, (0..16).collect::<Vec<_>>());
    }
}
