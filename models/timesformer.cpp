#include "models/timesformer.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/upsample_bicubic2d.h>
#include <ATen/ops/upsample_nearest1d.h>
#include <ATen/ops/upsample_nearest2d.h>
#include <ATen/ops/where.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

#include "models/device.h"

namespace sefar::models {

namespace {

constexpr double kBackboneLnEps = 1e-6;  // norm_layer=partial(nn.LayerNorm, eps=1e-6) officially

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Truncated normal N(0, std^2) on [a, b] by rejection: draw, then redraw what fell outside. The
// official (timm) inverse-CDF sampler gives the same distribution, but erfinv is slow on CPU here, and
// with std 0.02 and absolute bounds [-2, 2] a redraw practically never happens.
void trunc_normal_(at::Tensor t, double std, double a = -2.0, double b = 2.0) {
  at::NoGradGuard no_grad;
  t.normal_(0.0, std);
  for (int round = 0; round < 64; ++round) {
    at::Tensor outside = t.lt(a).logical_or_(t.gt(b));
    if (!outside.any().item<bool>()) return;
    t.copy_(at::where(outside, at::empty_like(t).normal_(0.0, std), t));
  }
  t.clamp_(a, b);  // only reachable with bounds far inside the distribution
}

// Stochastic depth: per-row keep/scale factors over the first dimension, or undefined when inactive.
at::Tensor drop_path_scale(int64_t rows, double p, bool training, const at::Tensor& like) {
  if (!training || p <= 0.0) return {};
  const double keep = 1.0 - p;
  return at::empty({rows}, like.options()).bernoulli_(keep).div_(keep);
}

at::Tensor apply_rows(const at::Tensor& x, const at::Tensor& scale) {
  if (!scale.defined()) return x;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  return x * scale.view(shape);
}

torch::nn::LayerNorm layer_norm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

// A LayerNorm computed in its parameters' dtype (fp32): what autocast does with layer_norm on CUDA,
// and what LibTorch 1.13's CPU autocast leaves out (its layer_norm rejects a bf16 input with fp32
// weights). Without autocast the input is fp32 already and nothing is converted.
at::Tensor fp32_norm(torch::nn::LayerNormImpl& layer, const at::Tensor& x) {
  const auto dtype = layer.weight.scalar_type();
  return layer.forward(x.scalar_type() == dtype ? x : x.to(dtype));
}

}  // namespace

namespace detail {

class Attention : public torch::nn::Module {
 public:
  Attention(int64_t dim, int64_t heads, bool qkv_bias, double attn_drop, double proj_drop, AttentionImpl impl)
      : heads_(heads), attn_drop_(attn_drop), proj_drop_(proj_drop), impl_(impl) {
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(qkv_bias)));
    proj = register_module("proj", torch::nn::Linear(dim, dim));
  }

  // x: [N, L, D] -> [N, L, D]
  at::Tensor forward(const at::Tensor& x) {
    const int64_t n = x.size(0), l = x.size(1), d = x.size(2);
    at::Tensor t = qkv->forward(x).reshape({n, l, 3, heads_, d / heads_}).permute({2, 0, 3, 1, 4});
    at::Tensor o =
        attention(t.select(0, 0), t.select(0, 1), t.select(0, 2), is_training() ? attn_drop_ : 0.0, impl_);
    o = proj->forward(o.transpose(1, 2).reshape({n, l, d}));
    if (proj_drop_ > 0) o = at::dropout(o, proj_drop_, is_training());
    return o;
  }

  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t heads_;
  double attn_drop_, proj_drop_;
  AttentionImpl impl_;
};

class Mlp : public torch::nn::Module {
 public:
  Mlp(int64_t dim, int64_t hidden, double drop) : drop_(drop) {
    fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  }

  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = at::gelu(fc1->forward(x));
    if (drop_ > 0) h = at::dropout(h, drop_, is_training());
    h = fc2->forward(h);
    if (drop_ > 0) h = at::dropout(h, drop_, is_training());
    return h;
  }

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  double drop_;
};

// Divided space-time block. Tokens are kept as cls [B, D] and patches [B, T, P, D]; the official code
// keeps one [B, 1 + P*T, D] sequence, which is the same computation.
class Block : public torch::nn::Module {
 public:
  Block(const ModelConfig& c, double drop_path) : drop_path_(drop_path) {
    const int64_t d = c.embed_dim;
    // Registration order = official state-dict order.
    norm1 = register_module("norm1", layer_norm(d, kBackboneLnEps));
    attn = register_module("attn", std::make_shared<Attention>(d, c.num_heads, c.qkv_bias, c.attn_drop_rate,
                                                               c.drop_rate, c.attention));
    temporal_norm1 = register_module("temporal_norm1", layer_norm(d, kBackboneLnEps));
    temporal_attn = register_module(
        "temporal_attn",
        std::make_shared<Attention>(d, c.num_heads, c.qkv_bias, c.attn_drop_rate, c.drop_rate, c.attention));
    temporal_fc = register_module("temporal_fc", torch::nn::Linear(d, d));
    norm2 = register_module("norm2", layer_norm(d, kBackboneLnEps));
    mlp =
        register_module("mlp", std::make_shared<Mlp>(d, static_cast<int64_t>(d * c.mlp_ratio), c.drop_rate));
  }

  std::pair<at::Tensor, at::Tensor> forward(at::Tensor cls, at::Tensor x) {
    const int64_t b = x.size(0), t = x.size(1), p = x.size(2), d = x.size(3);
    const bool train = is_training();

    // Temporal attention over the T tokens at each patch position. As officially, stochastic depth
    // drops rows of this (B*P, T, D) layout, and temporal_fc follows the dropped residual.
    at::Tensor xt = x.permute({0, 2, 1, 3}).reshape({b * p, t, d});
    at::Tensor r = temporal_attn->forward(fp32_norm(*temporal_norm1, xt));
    r = apply_rows(r, drop_path_scale(b * p, drop_path_, train, r));
    r = temporal_fc->forward(r);
    x = x + r.view({b, p, t, d}).permute({0, 2, 1, 3});

    // Spatial attention over the patches of each frame with the CLS token prepended; the T CLS
    // outputs are averaged. Stochastic depth drops (B*T) rows.
    at::Tensor xs = at::cat({cls.view({b, 1, 1, d}).expand({b, t, 1, d}), x}, 2).view({b * t, 1 + p, d});
    r = attn->forward(fp32_norm(*norm1, xs));
    r = apply_rows(r, drop_path_scale(b * t, drop_path_, train, r)).view({b, t, 1 + p, d});
    cls = cls + r.select(2, 0).mean(1);
    x = x + r.narrow(2, 1, p);

    // MLP on every token, one stochastic-depth draw per clip shared by its CLS and patch tokens.
    at::Tensor keep = drop_path_scale(b, drop_path_, train, x);
    cls = cls + apply_rows(mlp->forward(fp32_norm(*norm2, cls)), keep);
    x = x + apply_rows(mlp->forward(fp32_norm(*norm2, x)), keep);
    return {cls, x};
  }

  torch::nn::LayerNorm norm1{nullptr}, temporal_norm1{nullptr}, norm2{nullptr};
  std::shared_ptr<Attention> attn, temporal_attn;
  torch::nn::Linear temporal_fc{nullptr};
  std::shared_ptr<Mlp> mlp;

 private:
  double drop_path_;
};

class PatchEmbed : public torch::nn::Module {
 public:
  PatchEmbed(int64_t in_chans, int64_t dim, int64_t patch) {
    proj = register_module("proj",
                           torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch).stride(patch)));
  }
  torch::nn::Conv2d proj{nullptr};
};

// Official MultiGranularVisionTransformer (registered as vit.model).
class VisionTransformer : public torch::nn::Module {
 public:
  explicit VisionTransformer(const ModelConfig& c) : c_(c) {
    const int64_t d = c.embed_dim;
    cls_token = register_parameter("cls_token", at::zeros({1, 1, d}));
    pos_embed = register_parameter("pos_embed", at::zeros({1, 1 + c.num_patches(), d}));
    patch_embed = register_module("patch_embed", std::make_shared<PatchEmbed>(c.in_chans, d, c.patch_size));
    // nn.ParameterList officially: a child module whose parameters are named 0, 1, ...
    auto te = register_module("time_embed", std::make_shared<torch::nn::Module>());
    for (size_t i = 0; i < c.views.size(); ++i)
      time_embed.push_back(te->register_parameter(std::to_string(i), at::zeros({1, c.views[i], d})));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.depth; ++i) {
      // Stochastic depth rate grows linearly over the blocks (torch.linspace(0, rate, depth)).
      const double dp = c.depth > 1 ? c.drop_path_rate * static_cast<double>(i) / (c.depth - 1) : 0.0;
      auto blk = std::make_shared<Block>(c, dp);
      blocks->push_back(blk);
      block_list.push_back(blk);
    }
    norm = register_module("norm", layer_norm(d, kBackboneLnEps));
  }

  void reset_parameters() {
    at::NoGradGuard no_grad;
    if (c_.init == ParamInit::kTorch) {
      pos_embed.zero_();
      cls_token.zero_();
      for (auto& t : time_embed) t.zero_();
      for (auto& blk : block_list)
        for (auto& m : blk->modules(/*include_self=*/false)) {
          if (auto* l = m->as<torch::nn::Linear>()) l->reset_parameters();
          if (auto* n = m->as<torch::nn::LayerNorm>()) n->reset_parameters();
        }
      norm->reset_parameters();
      patch_embed->proj->reset_parameters();
      return;
    }
    trunc_normal_(pos_embed, 0.02);
    trunc_normal_(cls_token, 0.02);
    for (auto& t : time_embed) t.zero_();
    for (size_t i = 0; i < block_list.size(); ++i) {
      auto& blk = *block_list[i];
      for (torch::nn::Linear* l :
           {&blk.attn->qkv, &blk.attn->proj, &blk.temporal_attn->qkv, &blk.temporal_attn->proj,
            &blk.temporal_fc, &blk.mlp->fc1, &blk.mlp->fc2}) {
        trunc_normal_((*l)->weight, 0.02);
        if ((*l)->bias.defined()) (*l)->bias.zero_();
      }
      for (torch::nn::LayerNorm* n : {&blk.norm1, &blk.temporal_norm1, &blk.norm2}) {
        (*n)->weight.fill_(1.0);
        (*n)->bias.zero_();
      }
      // Blocks after the first start as pure spatial attention (TimeSformer initialisation).
      if (i > 0) {
        blk.temporal_fc->weight.zero_();
        blk.temporal_fc->bias.zero_();
      }
    }
    norm->weight.fill_(1.0);
    norm->bias.zero_();
    patch_embed->proj->reset_parameters();
  }

  // Patch embedding of one view: [B, C, T, H, W] -> [B, T, P, D], plus the grid (h, w).
  std::tuple<at::Tensor, int64_t, int64_t> embed(const at::Tensor& x) {
    const int64_t b = x.size(0), ch = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
    at::Tensor y = patch_embed->proj->forward(x.transpose(1, 2).reshape({b * t, ch, h, w}));
    const int64_t gh = y.size(2), gw = y.size(3);
    y = y.flatten(2).transpose(1, 2).reshape({b, t, gh * gw, y.size(1)});
    return {y, gh, gw};
  }

  at::Tensor patch_pos(int64_t gh, int64_t gw) {
    if (gh == c_.grid() && gw == c_.grid()) return pos_embed.narrow(1, 1, gh * gw).squeeze(0);
    return resize_pos_embed(pos_embed, gh, gw, /*bicubic=*/false).narrow(1, 1, gh * gw).squeeze(0);
  }

  at::Tensor time(size_t view, int64_t t) {
    const at::Tensor& te = time_embed[view];  // [1, T0, D]
    return resize_time_embed(te, t).squeeze(0);
  }

  std::vector<at::Tensor> features(const std::vector<at::Tensor>& views, const TokenMix* mix) {
    const size_t nv = views.size();
    if (nv != c_.views.size())
      throw std::invalid_argument("model expects " + std::to_string(c_.views.size()) + " views, got " +
                                  std::to_string(nv));
    if (mix && (mix->views.size() != nv || mix->masks.size() != nv))
      throw std::invalid_argument("token mix needs one second input and one mask per view (" +
                                  std::to_string(nv) + "), got " + std::to_string(mix->views.size()) +
                                  " inputs and " + std::to_string(mix->masks.size()) + " masks");
    const bool train = is_training();
    const int64_t d = c_.embed_dim;

    // Embed every view, then group views of equal (T, grid) so that they share one pass through the
    // blocks (each keeps its own temporal embedding).
    struct Embedded {
      at::Tensor cls, tokens;
    };
    std::vector<Embedded> emb(nv);
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<size_t>> groups;
    for (size_t i = 0; i < nv; ++i) {
      const at::Tensor& x = views[i];
      if (x.dim() != 5 || x.size(1) != c_.in_chans || x.size(3) % c_.patch_size != 0 ||
          x.size(4) % c_.patch_size != 0 || x.size(0) == 0 || x.size(2) == 0)
        throw std::invalid_argument("view " + std::to_string(i) + ": expected [B, " +
                                    std::to_string(c_.in_chans) + ", T, H, W] with H and W multiples of " +
                                    std::to_string(c_.patch_size) + ", got " + shape_str(x.sizes()));
      auto [tok, gh, gw] = embed(x);
      const int64_t b = x.size(0), t = x.size(2), p = gh * gw;
      if (mix) {
        const at::Tensor& x2 = mix->views[i];
        if (!x2.defined() || x2.sizes() != x.sizes())
          throw std::invalid_argument("token mix: view " + std::to_string(i) + " second input has shape " +
                                      (x2.defined() ? shape_str(x2.sizes()) : std::string("undefined")) +
                                      ", first input " + shape_str(x.sizes()));
        at::Tensor m = mix->masks[i];
        const bool ok =
            m.defined() && m.scalar_type() == at::kBool &&
            ((m.dim() == 1 && m.size(0) == p) || (m.dim() == 2 && m.size(0) == b && m.size(1) == p) ||
             (m.dim() == 3 && m.size(0) == b && m.size(1) == t && m.size(2) == p));
        if (!ok)
          throw std::invalid_argument(
              "token mix: view " + std::to_string(i) + " mask must be bool [" + std::to_string(p) + "], [" +
              std::to_string(b) + ", " + std::to_string(p) + "] or [" + std::to_string(b) + ", " +
              std::to_string(t) + ", " + std::to_string(p) + "], got " +
              (m.defined() ? std::string(c10::toString(m.scalar_type())) + " " + shape_str(m.sizes())
                           : std::string("undefined")));
        m = m.to(tok.device());
        if (m.dim() == 1)
          m = m.view({1, 1, p, 1});
        else if (m.dim() == 2)
          m = m.view({b, 1, p, 1});
        else
          m = m.view({b, t, p, 1});
        at::Tensor tok2 = std::get<0>(embed(x2));
        tok = at::where(m, tok, tok2);
      }
      // Position then time embedding, as officially (pos_drop / time_drop are the backbone dropout).
      tok = tok + patch_pos(gh, gw).view({1, 1, p, d});
      if (c_.drop_rate > 0) tok = at::dropout(tok, c_.drop_rate, train);
      tok = tok + time(i, t).view({1, t, 1, d});
      if (c_.drop_rate > 0) tok = at::dropout(tok, c_.drop_rate, train);
      at::Tensor cls = (cls_token + pos_embed.narrow(1, 0, 1)).view({1, d}).expand({b, d});
      if (c_.drop_rate > 0) cls = at::dropout(cls, c_.drop_rate, train);
      emb[i] = {cls, tok};
      groups[{t, gh, gw}].push_back(i);
    }

    std::vector<at::Tensor> out(nv);
    for (auto& [key, members] : groups) {
      std::vector<at::Tensor> cl, tk;
      std::vector<int64_t> sizes;
      for (size_t i : members) {
        cl.push_back(emb[i].cls);
        tk.push_back(emb[i].tokens);
        sizes.push_back(emb[i].tokens.size(0));
      }
      at::Tensor cls = members.size() == 1 ? cl[0] : at::cat(cl, 0);
      at::Tensor x = members.size() == 1 ? tk[0] : at::cat(tk, 0);
      for (auto& blk : block_list) std::tie(cls, x) = blk->forward(cls, x);
      cls = fp32_norm(*norm, cls);
      int64_t start = 0;
      for (size_t k = 0; k < members.size(); ++k) {
        out[members[k]] = cls.narrow(0, start, sizes[k]);
        start += sizes[k];
      }
    }
    return out;
  }

  at::Tensor cls_token, pos_embed;
  std::shared_ptr<PatchEmbed> patch_embed;
  std::vector<at::Tensor> time_embed;
  torch::nn::ModuleList blocks{nullptr};
  std::vector<std::shared_ptr<Block>> block_list;
  torch::nn::LayerNorm norm{nullptr};

 private:
  ModelConfig c_;
};

}  // namespace detail

MultiGranularViT::MultiGranularViT(const ModelConfig& config) : config_(config) {
  config_.validate();
  // Fail at construction rather than at the first forward pass.
  if (config_.attention == AttentionImpl::kFused && !fused_attention_available())
    throw std::invalid_argument(
        "model config: attention 'fused' needs LibTorch >= 2.0; use 'auto' or 'explicit'");
  const int64_t d = config_.embed_dim, f = config_.fusion_dim;
  // Official nesting: multi_granular_vit.vit (vit_small/base_patch16_224) .model (the transformer).
  auto wrapper = register_module("vit", std::make_shared<torch::nn::Module>());
  vit_ = wrapper->register_module("model", std::make_shared<detail::VisionTransformer>(config_));
  // Official registration order: post_fusion1, post_fusion0, global_fusion, ln1, ln2, ln3, fc.
  post_fusion1_ = register_module("post_fusion1", torch::nn::Linear(2 * d, f));
  post_fusion0_ = register_module("post_fusion0", torch::nn::Linear(d, f));
  global_fusion_ =
      register_module("global_fusion", torch::nn::Linear((config_.num_pairs() + config_.num_views()) * f, f));
  // The head's LayerNorms use PyTorch's default eps (1e-5), unlike the backbone's 1e-6.
  ln1_ = register_module("ln1", layer_norm(f, 1e-5));
  ln2_ = register_module("ln2", layer_norm(f, 1e-5));
  ln3_ = register_module("ln3", layer_norm(f, 1e-5));
  fc_ = register_module("fc", torch::nn::Linear(f, config_.num_classes));
  reset_parameters();
}

MultiGranularViT::~MultiGranularViT() = default;

void MultiGranularViT::reset_parameters() {
  vit_->reset_parameters();
  for (auto* l : {&post_fusion1_, &post_fusion0_, &global_fusion_, &fc_}) (*l)->reset_parameters();
  for (auto* n : {&ln1_, &ln2_, &ln3_}) (*n)->reset_parameters();
}

std::vector<at::Tensor> MultiGranularViT::backbone(const std::vector<at::Tensor>& views,
                                                   const TokenMix* mix) {
  return vit_->features(views, mix);
}

at::Tensor MultiGranularViT::fuse(const std::vector<at::Tensor>& features) {
  const int64_t nv = config_.num_views();
  if (static_cast<int64_t>(features.size()) != nv)
    throw std::invalid_argument("head expects " + std::to_string(nv) + " view features, got " +
                                std::to_string(features.size()));
  for (size_t i = 0; i < features.size(); ++i)
    if (features[i].dim() != 2 || features[i].size(1) != config_.embed_dim ||
        features[i].size(0) != features[0].size(0))
      throw std::invalid_argument("head: feature " + std::to_string(i) + " must be [B, " +
                                  std::to_string(config_.embed_dim) + "] with the same B as feature 0, got " +
                                  shape_str(features[i].sizes()));
  const int64_t b = features[0].size(0);
  at::Tensor f = at::stack(features, 0);                              // [V, B, D]
  at::Tensor g = fp32_norm(*ln2_, at::gelu(post_fusion0_->forward(f)));  // [V, B, F]
  at::Tensor all = g;
  if (nv > 1) {
    std::vector<at::Tensor> left, right;
    for (int64_t i = 0; i < nv; ++i)
      for (int64_t j = i + 1; j < nv; ++j) {
        left.push_back(features[i]);
        right.push_back(features[j]);
      }
    at::Tensor pairs = at::cat({at::stack(left, 0), at::stack(right, 0)}, -1);  // [pairs, B, 2D]
    at::Tensor h = fp32_norm(*ln1_, at::gelu(post_fusion1_->forward(pairs)));
    all = at::cat({h, g}, 0);  // pairs first, then views
  }
  // Per clip: concatenation over (pairs..., views...) of the 256-d vectors.
  at::Tensor flat = all.permute({1, 0, 2}).reshape({b, -1});
  return fp32_norm(*ln3_, at::gelu(global_fusion_->forward(flat)));
}

at::Tensor MultiGranularViT::classify(const at::Tensor& fused, bool dropout_active) {
  at::Tensor z = fused;
  if (config_.head_dropout > 0) z = at::dropout(z, config_.head_dropout, dropout_active);
  return fc_->forward(z);
}

HeadOutput MultiGranularViT::head(const std::vector<at::Tensor>& features) {
  return head(features, is_training());
}

HeadOutput MultiGranularViT::head(const std::vector<at::Tensor>& features, bool dropout_active) {
  HeadOutput out;
  out.fused = fuse(features);
  out.logits = classify(out.fused, dropout_active);
  return out;
}

at::Tensor MultiGranularViT::head_samples(const std::vector<at::Tensor>& features, int64_t k) {
  if (k <= 0) throw std::invalid_argument("head_samples: K must be positive");
  at::Tensor z = fuse(features);
  const int64_t b = z.size(0), f = z.size(1);
  // Everything before the dropout is deterministic, so only dropout + fc run K times (as one batch).
  at::Tensor zk = z.unsqueeze(0).expand({k, b, f}).reshape({k * b, f});
  return classify(zk, /*dropout_active=*/true).view({k, b, config_.num_classes});
}

at::Tensor MultiGranularViT::monte_carlo_logits(const std::vector<at::Tensor>& views, int64_t k) {
  if (k <= 0) throw std::invalid_argument("monte_carlo_logits: K must be positive");
  if (!backbone_stochastic()) return head_samples(backbone(views), k);
  std::vector<at::Tensor> repeated;
  int64_t b = 0;
  for (const auto& v : views) {
    if (v.dim() != 5) throw std::invalid_argument("monte_carlo_logits: views must be [B, C, T, H, W]");
    b = v.size(0);
    repeated.push_back(v.repeat({k, 1, 1, 1, 1}));  // pass-major: rows [j*B, (j+1)*B) are pass j
  }
  return head(backbone(repeated), /*dropout_active=*/true).logits.view({k, b, config_.num_classes});
}

ModelOutput MultiGranularViT::forward(const std::vector<at::Tensor>& views, const TokenMix* mix) {
  ModelOutput out;
  out.features = backbone(views, mix);
  HeadOutput h = head(out.features);
  out.fused = h.fused;
  out.logits = h.logits;
  return out;
}

bool MultiGranularViT::backbone_stochastic() const {
  return is_training() && (config_.drop_rate > 0 || config_.attn_drop_rate > 0 || config_.drop_path_rate > 0);
}

std::shared_ptr<MultiGranularViT> make_model(const ModelConfig& config) {
  return std::make_shared<MultiGranularViT>(config);
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

at::Tensor resize_time_embed(const at::Tensor& time_embed, int64_t frames) {
  if (time_embed.size(1) == frames) return time_embed;
  return at::upsample_nearest1d(time_embed.transpose(1, 2), std::vector<int64_t>{frames}).transpose(1, 2);
}

at::Tensor resize_pos_embed(const at::Tensor& pos_embed, int64_t grid_h, int64_t grid_w, bool bicubic) {
  if (pos_embed.dim() != 3 || pos_embed.size(0) != 1 || pos_embed.size(1) < 2)
    throw std::invalid_argument("position embedding must be [1, 1 + P, D], got " +
                                shape_str(pos_embed.sizes()));
  const int64_t n = pos_embed.size(1) - 1, d = pos_embed.size(2);
  const auto g0 = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  if (g0 * g0 != n)
    throw std::invalid_argument("position embedding " + shape_str(pos_embed.sizes()) +
                                " does not hold a square grid after the CLS position");
  if (g0 == grid_h && g0 == grid_w) return pos_embed;
  const auto dtype = pos_embed.scalar_type();
  at::Tensor grid = pos_embed.narrow(1, 1, n).to(at::kFloat).reshape({1, g0, g0, d}).permute({0, 3, 1, 2});
  const std::vector<int64_t> size = {grid_h, grid_w};
  at::Tensor r = bicubic ? at::upsample_bicubic2d(grid, size, /*align_corners=*/false)
                         : at::upsample_nearest2d(grid, size);
  r = r.permute({0, 2, 3, 1}).reshape({1, grid_h * grid_w, d}).to(dtype);
  return at::cat({pos_embed.narrow(1, 0, 1), r}, 1);
}

}  // namespace sefar::models
