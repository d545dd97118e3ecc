// The multi-granular TimeSformer: official parameter names and shapes, parameter counts of S and B,
// a literal re-statement of the official forward pass as reference, Tube TokenMix, gradients, the
// device seam, weight loading/saving and inference files. Tiny model only (fast on 2 cores).
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/device.h"
#include "models/infer.h"
#include "models/timesformer.h"
#include "models/weights.h"

namespace fs = std::filesystem;
using namespace sefar::models;
using SD = std::map<std::string, at::Tensor>;

namespace {

// One intra-op thread: the tiny model's ops are too small to gain from two, and on a 2-core machine
// shared with builds, two threads made this file 2-3x slower (5.6 s vs 13-16 s measured).
struct Setup {
  Setup() { at::set_num_threads(1); }
};
const Setup setup_once;

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path =
        fs::temp_directory_path() / ("sefar_model_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

ModelConfig tiny_config() {
  return ModelConfig::tiny(/*num_classes=*/10, {2, 2, 4});
}

std::vector<at::Tensor> random_views(const ModelConfig& c, int64_t b, int64_t size = 32) {
  std::vector<at::Tensor> v;
  for (int64_t t : c.views) v.push_back(at::randn({b, c.in_chans, t, size, size}));
  return v;
}

// Moves every parameter away from its initial value (zero temporal_fc and time_embed would otherwise
// hide wiring mistakes and block gradients).
void randomize(torch::nn::Module& m, double scale = 0.2) {
  at::NoGradGuard g;
  for (auto& p : m.parameters()) p.add_(at::randn_like(p) * scale);
}

// The tiny model made right after seeding the generator with `seed`, every parameter off its initial
// value (randomize).
std::shared_ptr<MultiGranularViT> random_model(uint64_t seed) {
  at::manual_seed(seed);
  auto model = make_model(tiny_config());
  randomize(*model);
  return model;
}

// random_model in eval mode.
std::shared_ptr<MultiGranularViT> random_eval_model(uint64_t seed) {
  auto model = random_model(seed);
  model->eval();
  return model;
}

std::string shape_of(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// ---- Reference: the official forward pass restated literally with its own token layout -------------
// (sequence [B, 1 + P*T, D] with patch-major '(h w t)' order, CLS repeated over frames, as in
// timesformer/models/vit.py Block.forward and multi_granular_vit.forward).

at::Tensor ref_ln(const at::Tensor& x, const SD& sd, const std::string& pre, double eps) {
  return at::layer_norm(x, {x.size(-1)}, sd.at(pre + "weight"), sd.at(pre + "bias"), eps);
}

at::Tensor ref_linear(const at::Tensor& x, const SD& sd, const std::string& pre) {
  return at::linear(x, sd.at(pre + "weight"), sd.at(pre + "bias"));
}

at::Tensor ref_attn(const at::Tensor& x, const SD& sd, const std::string& pre, int64_t heads) {
  const int64_t b = x.size(0), n = x.size(1), c = x.size(2);
  at::Tensor qkv =
      ref_linear(x, sd, pre + "qkv.").reshape({b, n, 3, heads, c / heads}).permute({2, 0, 3, 1, 4});
  at::Tensor attn = at::matmul(qkv[0], qkv[1].transpose(-2, -1)) * std::pow(double(c / heads), -0.5);
  attn = at::softmax(attn, -1);
  at::Tensor o = at::matmul(attn, qkv[2]).transpose(1, 2).reshape({b, n, c});
  return ref_linear(o, sd, pre + "proj.");
}

at::Tensor ref_view(const at::Tensor& x, int64_t view, const SD& sd, const ModelConfig& c) {
  const std::string m = "vit.model.";
  const int64_t b = x.size(0), t = x.size(2), d = c.embed_dim, heads = c.num_heads;
  at::Tensor tok = at::conv2d(x.transpose(1, 2).reshape({b * t, x.size(1), x.size(3), x.size(4)}),
                              sd.at(m + "patch_embed.proj.weight"), sd.at(m + "patch_embed.proj.bias"),
                              {c.patch_size, c.patch_size});
  tok = tok.flatten(2).transpose(1, 2);  // [(b t), P, D]
  const int64_t p = tok.size(1);
  at::Tensor seq = at::cat({sd.at(m + "cls_token").expand({b * t, 1, d}), tok}, 1) + sd.at(m + "pos_embed");
  at::Tensor cls = seq.narrow(0, 0, b).narrow(1, 0, 1);
  at::Tensor pt = seq.narrow(1, 1, p).reshape({b, t, p, d}).permute({0, 2, 1, 3}).reshape({b * p, t, d});
  pt = pt + sd.at(m + "time_embed." + std::to_string(view));
  seq = at::cat({cls, pt.reshape({b, p * t, d})}, 1);
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string k = m + "blocks." + std::to_string(i) + ".";
    at::Tensor xt = seq.narrow(1, 1, p * t).reshape({b * p, t, d});
    at::Tensor res_t = ref_attn(ref_ln(xt, sd, k + "temporal_norm1.", 1e-6), sd, k + "temporal_attn.", heads);
    res_t = ref_linear(res_t.reshape({b, p * t, d}), sd, k + "temporal_fc.");
    xt = seq.narrow(1, 1, p * t) + res_t;
    at::Tensor init_cls = seq.narrow(1, 0, 1);
    at::Tensor cls_rep = init_cls.repeat({1, t, 1}).reshape({b * t, 1, d});
    at::Tensor xs = xt.reshape({b, p, t, d}).permute({0, 2, 1, 3}).reshape({b * t, p, d});
    xs = at::cat({cls_rep, xs}, 1);
    at::Tensor res_s = ref_attn(ref_ln(xs, sd, k + "norm1.", 1e-6), sd, k + "attn.", heads);
    at::Tensor cls_s = res_s.select(1, 0).reshape({b, t, d}).mean(1, true);
    res_s = res_s.narrow(1, 1, p).reshape({b, t, p, d}).permute({0, 2, 1, 3}).reshape({b, p * t, d});
    seq = at::cat({init_cls, xt}, 1) + at::cat({cls_s, res_s}, 1);
    at::Tensor h = at::gelu(ref_linear(ref_ln(seq, sd, k + "norm2.", 1e-6), sd, k + "mlp.fc1."));
    seq = seq + ref_linear(h, sd, k + "mlp.fc2.");
  }
  return ref_ln(seq, sd, m + "norm.", 1e-6).select(1, 0);
}

at::Tensor ref_head(const std::vector<at::Tensor>& f, const SD& sd) {
  std::vector<at::Tensor> fusion;
  for (size_t i = 0; i < f.size(); ++i)
    for (size_t j = i + 1; j < f.size(); ++j)
      fusion.push_back(
          ref_ln(at::gelu(ref_linear(at::cat({f[i], f[j]}, -1), sd, "post_fusion1.")), sd, "ln1.", 1e-5));
  at::Tensor g = ref_ln(at::gelu(ref_linear(at::stack(f), sd, "post_fusion0.")), sd, "ln2.", 1e-5);
  at::Tensor all = at::cat({at::stack(fusion), g}, 0).permute({1, 0, 2}).reshape({g.size(1), -1});
  at::Tensor z = ref_ln(at::gelu(ref_linear(all, sd, "global_fusion.")), sd, "ln3.", 1e-5);
  return ref_linear(z, sd, "fc.");
}

bool close(const at::Tensor& a, const at::Tensor& b, double tol = 1e-5) {
  return a.sizes() == b.sizes() && at::allclose(a, b, tol, tol);
}

}  // namespace

TEST_CASE("model: tiny state dict has the official keys, order and shapes") {
  // Written by hand from timesformer/models/vit.py (MultiGranularVisionTransformer, Block, Attention,
  // Mlp, PatchEmbed) and multi_granular_vit: D 64, patch 8 at 32 px (P 16), 2 blocks, mlp 256,
  // views {2,2,4}, fusion 256, 10 classes.
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"vit.model.cls_token", "[1,1,64]"},
      {"vit.model.pos_embed", "[1,17,64]"},
      {"vit.model.patch_embed.proj.weight", "[64,3,8,8]"},
      {"vit.model.patch_embed.proj.bias", "[64]"},
      {"vit.model.time_embed.0", "[1,2,64]"},
      {"vit.model.time_embed.1", "[1,2,64]"},
      {"vit.model.time_embed.2", "[1,4,64]"},
      {"vit.model.blocks.0.norm1.weight", "[64]"},
      {"vit.model.blocks.0.norm1.bias", "[64]"},
      {"vit.model.blocks.0.attn.qkv.weight", "[192,64]"},
      {"vit.model.blocks.0.attn.qkv.bias", "[192]"},
      {"vit.model.blocks.0.attn.proj.weight", "[64,64]"},
      {"vit.model.blocks.0.attn.proj.bias", "[64]"},
      {"vit.model.blocks.0.temporal_norm1.weight", "[64]"},
      {"vit.model.blocks.0.temporal_norm1.bias", "[64]"},
      {"vit.model.blocks.0.temporal_attn.qkv.weight", "[192,64]"},
      {"vit.model.blocks.0.temporal_attn.qkv.bias", "[192]"},
      {"vit.model.blocks.0.temporal_attn.proj.weight", "[64,64]"},
      {"vit.model.blocks.0.temporal_attn.proj.bias", "[64]"},
      {"vit.model.blocks.0.temporal_fc.weight", "[64,64]"},
      {"vit.model.blocks.0.temporal_fc.bias", "[64]"},
      {"vit.model.blocks.0.norm2.weight", "[64]"},
      {"vit.model.blocks.0.norm2.bias", "[64]"},
      {"vit.model.blocks.0.mlp.fc1.weight", "[256,64]"},
      {"vit.model.blocks.0.mlp.fc1.bias", "[256]"},
      {"vit.model.blocks.0.mlp.fc2.weight", "[64,256]"},
      {"vit.model.blocks.0.mlp.fc2.bias", "[64]"},
      {"vit.model.blocks.1.norm1.weight", "[64]"},
      {"vit.model.blocks.1.norm1.bias", "[64]"},
      {"vit.model.blocks.1.attn.qkv.weight", "[192,64]"},
      {"vit.model.blocks.1.attn.qkv.bias", "[192]"},
      {"vit.model.blocks.1.attn.proj.weight", "[64,64]"},
      {"vit.model.blocks.1.attn.proj.bias", "[64]"},
      {"vit.model.blocks.1.temporal_norm1.weight", "[64]"},
      {"vit.model.blocks.1.temporal_norm1.bias", "[64]"},
      {"vit.model.blocks.1.temporal_attn.qkv.weight", "[192,64]"},
      {"vit.model.blocks.1.temporal_attn.qkv.bias", "[192]"},
      {"vit.model.blocks.1.temporal_attn.proj.weight", "[64,64]"},
      {"vit.model.blocks.1.temporal_attn.proj.bias", "[64]"},
      {"vit.model.blocks.1.temporal_fc.weight", "[64,64]"},
      {"vit.model.blocks.1.temporal_fc.bias", "[64]"},
      {"vit.model.blocks.1.norm2.weight", "[64]"},
      {"vit.model.blocks.1.norm2.bias", "[64]"},
      {"vit.model.blocks.1.mlp.fc1.weight", "[256,64]"},
      {"vit.model.blocks.1.mlp.fc1.bias", "[256]"},
      {"vit.model.blocks.1.mlp.fc2.weight", "[64,256]"},
      {"vit.model.blocks.1.mlp.fc2.bias", "[64]"},
      {"vit.model.norm.weight", "[64]"},
      {"vit.model.norm.bias", "[64]"},
      {"post_fusion1.weight", "[256,128]"},
      {"post_fusion1.bias", "[256]"},
      {"post_fusion0.weight", "[256,64]"},
      {"post_fusion0.bias", "[256]"},
      {"global_fusion.weight", "[256,1536]"},
      {"global_fusion.bias", "[256]"},
      {"ln1.weight", "[256]"},
      {"ln1.bias", "[256]"},
      {"ln2.weight", "[256]"},
      {"ln2.bias", "[256]"},
      {"ln3.weight", "[256]"},
      {"ln3.bias", "[256]"},
      {"fc.weight", "[10,256]"},
      {"fc.bias", "[10]"},
  };
  auto model = make_model(tiny_config());
  std::vector<std::pair<std::string, std::string>> actual;
  for (const auto& p : model->named_parameters()) actual.emplace_back(p.key(), shape_of(p.value().sizes()));
  CHECK(model->named_buffers().size() == 0);
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(actual[i].first == expected[i].first);
    CHECK(actual[i].second == expected[i].second);
  }
}

TEST_CASE("model: official initialisation") {
  at::manual_seed(1);
  auto model = make_model(tiny_config());
  const SD sd = state_dict(*model);
  CHECK(sd.at("vit.model.time_embed.2").abs().max().item<float>() == 0.0f);
  CHECK(sd.at("vit.model.blocks.1.temporal_fc.weight").abs().max().item<float>() == 0.0f);
  CHECK(sd.at("vit.model.blocks.0.temporal_fc.weight").abs().max().item<float>() > 0.0f);
  CHECK(sd.at("vit.model.blocks.0.attn.qkv.bias").abs().max().item<float>() == 0.0f);
  CHECK(sd.at("vit.model.blocks.1.norm2.weight").eq(1.0).all().item<bool>());
  const double std_qkv = sd.at("vit.model.blocks.0.attn.qkv.weight").std().item<double>();
  CHECK(std_qkv == doctest::Approx(0.02).epsilon(0.1));
  CHECK(sd.at("vit.model.pos_embed").std().item<double>() == doctest::Approx(0.02).epsilon(0.15));
  // Head Linear layers keep PyTorch's default: uniform within 1/sqrt(fan_in).
  CHECK(sd.at("global_fusion.weight").abs().max().item<double>() <= 1.0 / std::sqrt(1536.0) + 1e-7);
}

TEST_CASE("model: parameter counts and key tensors of S and B") {
  auto s = make_model(ModelConfig::small(99, {2, 2, 4}));
  MESSAGE("SeFAR-S parameters: " << parameter_count(*s));
  CHECK(parameter_count(*s) == 31264227);  // 31.26M
  const SD ss = state_dict(*s);
  CHECK(ss.size() == 263);  // 7 embedding + 12 * 20 block + 2 norm + 14 head
  CHECK(shape_of(ss.at("vit.model.pos_embed").sizes()) == "[1,197,384]");
  CHECK(shape_of(ss.at("vit.model.patch_embed.proj.weight").sizes()) == "[384,3,16,16]");
  CHECK(shape_of(ss.at("vit.model.time_embed.2").sizes()) == "[1,4,384]");
  CHECK(shape_of(ss.at("vit.model.blocks.11.attn.qkv.weight").sizes()) == "[1152,384]");
  CHECK(shape_of(ss.at("vit.model.blocks.11.mlp.fc1.weight").sizes()) == "[1536,384]");
  CHECK(shape_of(ss.at("post_fusion1.weight").sizes()) == "[256,768]");
  CHECK(shape_of(ss.at("global_fusion.weight").sizes()) == "[256,1536]");
  CHECK(shape_of(ss.at("fc.weight").sizes()) == "[99,256]");
  CHECK(ss.count("vit.model.blocks.12.norm1.weight") == 0);

  auto b = make_model(ModelConfig::base(99, {2, 2, 4}));
  MESSAGE("SeFAR-B parameters: " << parameter_count(*b));
  CHECK(parameter_count(*b) == 122269539);  // 122.3M
  const SD bs = state_dict(*b);
  CHECK(bs.size() == 263);
  CHECK(shape_of(bs.at("vit.model.pos_embed").sizes()) == "[1,197,768]");
  CHECK(shape_of(bs.at("vit.model.blocks.5.temporal_attn.qkv.weight").sizes()) == "[2304,768]");
  CHECK(shape_of(bs.at("post_fusion0.weight").sizes()) == "[256,768]");
  CHECK(shape_of(bs.at("post_fusion1.weight").sizes()) == "[256,1536]");
}

TEST_CASE("model: forward equals the official computation restated literally") {
  const ModelConfig c = tiny_config();
  auto model = random_eval_model(2);
  at::NoGradGuard g;
  auto views = random_views(c, 2);
  ModelOutput out = model->forward(views);
  const SD sd = state_dict(*model);
  std::vector<at::Tensor> ref_f;
  for (size_t i = 0; i < views.size(); ++i) {
    ref_f.push_back(ref_view(views[i], int64_t(i), sd, c));
    CHECK(close(out.features[i], ref_f[i]));
  }
  CHECK(close(out.logits, ref_head(ref_f, sd)));
}

TEST_CASE("model: shapes through every stage") {
  at::manual_seed(3);
  const ModelConfig c = tiny_config();
  auto model = make_model(c);
  model->eval();
  at::NoGradGuard g;
  auto views = random_views(c, 3);
  auto f = model->backbone(views);
  REQUIRE(f.size() == 3);
  for (const auto& fi : f) CHECK(shape_of(fi.sizes()) == "[3,64]");
  HeadOutput h = model->head(f);
  CHECK(shape_of(h.fused.sizes()) == "[3,256]");
  CHECK(shape_of(h.logits.sizes()) == "[3,10]");
  ModelOutput o = model->forward(views);
  CHECK(at::equal(o.logits, h.logits));
  CHECK(at::equal(o.fused, h.fused));

  // Other clip lengths and input sizes resize the temporal / position embeddings.
  std::vector<at::Tensor> odd = {at::randn({1, 3, 3, 48, 48}), at::randn({1, 3, 1, 48, 48}),
                                 at::randn({1, 3, 6, 48, 48})};
  CHECK(shape_of(model->forward(odd).logits.sizes()) == "[1,10]");

  // Errors name the view and the shapes.
  CHECK_THROWS_WITH_AS(model->forward({views[0], views[1]}), doctest::Contains("expects 3 views"),
                       std::invalid_argument);
  auto bad = views;
  bad[2] = at::randn({3, 3, 4, 30, 32});
  CHECK_THROWS_WITH_AS(model->forward(bad), doctest::Contains("view 2"), std::invalid_argument);
  CHECK_THROWS_AS(make_model(ModelConfig::tiny(10, {})), std::invalid_argument);
  ModelConfig fused = c;
  fused.attention = AttentionImpl::kFused;
  if (!fused_attention_available()) CHECK_THROWS_AS(make_model(fused), std::invalid_argument);
}

TEST_CASE("model: each view uses its own temporal embedding within a shared pass") {
  const ModelConfig c = tiny_config();
  auto model = random_eval_model(4);
  at::NoGradGuard g;
  auto views = random_views(c, 2);
  views[1] = views[0].clone();  // views 0 and 1 share a pass (T = 2)
  {
    at::Tensor te1 = model->named_parameters()["vit.model.time_embed.1"];
    te1.copy_(model->named_parameters()["vit.model.time_embed.0"]);
  }
  auto f = model->backbone(views);
  CHECK(close(f[0], f[1]));
  // (A random change: adding the same constant to every channel would vanish in the LayerNorms.)
  at::Tensor te0 = model->named_parameters()["vit.model.time_embed.0"];
  te0.add_(at::randn_like(te0));
  auto f2 = model->backbone(views);
  CHECK(!close(f2[0], f[0], 1e-3));
  CHECK(close(f2[1], f[1]));
  CHECK(close(f2[2], f[2]));
}

TEST_CASE("model: Tube TokenMix with all-ones / all-zeros masks reproduces each input") {
  const ModelConfig c = tiny_config();
  auto model = random_eval_model(5);
  at::NoGradGuard g;
  const int64_t b = 2, p = c.num_patches();
  auto x = random_views(c, b), x2 = random_views(c, b);
  const ModelOutput ox = model->forward(x), ox2 = model->forward(x2);
  for (int shape = 0; shape < 3; ++shape) {
    CAPTURE(shape);
    TokenMix ones, zeros;
    ones.views = zeros.views = x2;
    for (int64_t t : c.views) {
      std::vector<int64_t> s = shape == 0   ? std::vector<int64_t>{p}
                               : shape == 1 ? std::vector<int64_t>{b, p}
                                            : std::vector<int64_t>{b, t, p};
      ones.masks.push_back(at::ones(s, at::kBool));
      zeros.masks.push_back(at::zeros(s, at::kBool));
    }
    const ModelOutput o1 = model->forward(x, &ones), o0 = model->forward(x, &zeros);
    CHECK(at::equal(o1.logits, ox.logits));
    CHECK(at::equal(o0.logits, ox2.logits));
    for (size_t i = 0; i < x.size(); ++i) {
      CHECK(at::equal(o1.features[i], ox.features[i]));
      CHECK(at::equal(o0.features[i], ox2.features[i]));
    }
  }
  // A real tube mix differs from both inputs, and a [B, P] tube equals its [B, T, P] expansion.
  TokenMix tube, frames;
  tube.views = frames.views = x2;
  for (size_t i = 0; i < x.size(); ++i) {
    at::Tensor m = at::rand({b, p}).lt(0.5);
    tube.masks.push_back(m);
    frames.masks.push_back(m.unsqueeze(1).expand({b, c.views[i], p}).contiguous());
  }
  const ModelOutput om = model->forward(x, &tube);
  CHECK(!close(om.logits, ox.logits, 1e-4));
  CHECK(!close(om.logits, ox2.logits, 1e-4));
  CHECK(at::equal(model->forward(x, &frames).logits, om.logits));

  TokenMix bad;
  bad.views = x2;
  bad.masks = {at::ones({p}, at::kBool), at::ones({p}, at::kBool), at::ones({p + 1}, at::kBool)};
  CHECK_THROWS_WITH_AS(model->forward(x, &bad), doctest::Contains("view 2 mask"), std::invalid_argument);
}

TEST_CASE("model: gradients reach every parameter") {
  const ModelConfig c = tiny_config();
  auto model = random_model(6);
  model->train();
  CHECK(model->backbone_stochastic());
  auto views = random_views(c, 2);
  model->forward(views).logits.sum().backward();
  int dead = 0;
  for (const auto& p : model->named_parameters()) {
    const at::Tensor& grad = p.value().grad();
    const bool ok = grad.defined() && grad.abs().sum().item<double>() > 0;
    if (!ok) {
      ++dead;
      MESSAGE("no gradient: " << p.key());
    }
  }
  CHECK(dead == 0);
}

TEST_CASE("model: teacher head samples (Monte-Carlo dropout on one backbone pass)") {
  const ModelConfig c = tiny_config();
  auto model = random_eval_model(7);
  CHECK(!model->backbone_stochastic());
  at::NoGradGuard g;
  auto f = model->backbone(random_views(c, 3));
  at::Tensor s = model->head_samples(f, 5);
  CHECK(shape_of(s.sizes()) == "[5,3,10]");
  CHECK(!at::equal(s[0], s[1]));  // dropout is active although the model is in eval mode
  // The same z feeds every sample: without dropout all samples equal the deterministic logits.
  ModelConfig nodrop = c;
  nodrop.head_dropout = 0.0;
  auto m2 = make_model(nodrop);
  load_state_dict(*m2, state_dict(*model));
  m2->eval();
  at::Tensor s2 = m2->head_samples(f, 4), logits = m2->head(f).logits;
  for (int k = 0; k < 4; ++k) CHECK(close(s2[k], logits, 1e-6));
  // From views: one backbone pass in eval mode; K*B clips in one pass when the backbone is random.
  auto views = random_views(c, 2);
  CHECK(shape_of(model->monte_carlo_logits(views, 3).sizes()) == "[3,2,10]");
  m2->train();
  REQUIRE(m2->backbone_stochastic());
  at::Tensor mc = m2->monte_carlo_logits(views, 3);
  CHECK(shape_of(mc.sizes()) == "[3,2,10]");
  CHECK(!at::equal(mc[0], mc[1]));  // stochastic depth differs between passes
  m2->eval();
  // Dropout keeps the expectation: the mean over many samples approaches the eval logits.
  at::Tensor many = model->head_samples(f, 20000).mean(0);
  CHECK(close(many, model->head(f, false).logits, 0.15));
}

TEST_CASE("device: attention implementations and autocast guard") {
  at::manual_seed(8);
  at::Tensor q = at::randn({2, 3, 5, 8}), k = at::randn({2, 3, 7, 8}), v = at::randn({2, 3, 7, 8});
  at::Tensor e = explicit_attention(q, k, v, 0.0);
  CHECK(shape_of(e.sizes()) == "[2,3,5,8]");
  // One output element by hand.
  {
    std::vector<double> w(7);
    double sum = 0;
    for (int j = 0; j < 7; ++j) {
      double dot = 0;
      for (int t = 0; t < 8; ++t) dot += q[1][2][4][t].item<double>() * k[1][2][j][t].item<double>();
      w[j] = std::exp(dot / std::sqrt(8.0));
      sum += w[j];
    }
    double out = 0;
    for (int j = 0; j < 7; ++j) out += w[j] / sum * v[1][2][j][3].item<double>();
    CHECK(e[1][2][4][3].item<double>() == doctest::Approx(out).epsilon(1e-5));
  }
  if (fused_attention_available()) {
    at::Tensor f = fused_attention(q, k, v, 0.0);
    CHECK(at::allclose(e, f, 1e-5, 1e-5));
    CHECK(at::allclose(attention(q, k, v, 0.0, AttentionImpl::kAuto), f, 1e-5, 1e-5));
  } else {
    MESSAGE("fused attention needs LibTorch >= 2.0: explicit/fused comparison skipped");
    CHECK_THROWS_AS(fused_attention(q, k, v, 0.0), std::runtime_error);
    CHECK(at::equal(attention(q, k, v, 0.0, AttentionImpl::kAuto), e));
  }

  CHECK(!autocast_enabled(c10::DeviceType::CPU));
  {
    AutocastGuard guard(c10::DeviceType::CPU, true, at::kBFloat16);
    CHECK(autocast_enabled(c10::DeviceType::CPU));
    CHECK((at::mm(at::randn({4, 4}), at::randn({4, 4})).scalar_type() == at::kBFloat16));
    {
      AutocastGuard off(c10::DeviceType::CPU, false);
      CHECK(!autocast_enabled(c10::DeviceType::CPU));
      CHECK((at::mm(at::randn({4, 4}), at::randn({4, 4})).scalar_type() == at::kFloat));
    }
    CHECK(autocast_enabled(c10::DeviceType::CPU));
  }
  CHECK(!autocast_enabled(c10::DeviceType::CPU));
  CHECK(resolve_device("cpu").is_cpu());
}

TEST_CASE("weights: save -> load round trip is bit-exact and keeps the config") {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  auto a = random_model(9);
  save_weights(*a, path);
  at::manual_seed(10);
  auto b = make_model(tiny_config());
  LoadReport r = load_weights(*b, path);
  CHECK(r.loaded.size() == 63);
  CHECK(r.missing.empty());
  CHECK(r.unexpected.empty());
  const SD sa = state_dict(*a), sb = state_dict(*b);
  for (const auto& [k, v] : sa) CHECK_MESSAGE(at::equal(v, sb.at(k)), k);
  const ModelConfig c = model_config_from_weights(path);
  CHECK(model_config_to_json(c) == model_config_to_json(tiny_config()));

  // A leading "module." (DistributedDataParallel checkpoints) is stripped.
  SD prefixed;
  for (const auto& [k, v] : sa) prefixed["module." + k] = v;
  auto d = make_model(tiny_config());
  CHECK(load_state_dict(*d, prefixed).loaded.size() == 63);
  CHECK(at::equal(state_dict(*d).at("fc.weight"), sa.at("fc.weight")));
}

TEST_CASE("weights: wrong shapes, missing and unexpected keys are reported by key") {
  TempDir dir;
  auto model = make_model(tiny_config());
  const SD good = state_dict(*model);
  auto expect_error = [&](const SD& sd, const std::vector<std::string>& parts, bool strict = true) {
    const std::string path = dir.file("bad.safetensors");
    sefar::io::save_safetensors(path, sd);
    const at::Tensor before = state_dict(*model).at("fc.bias").clone();
    LoadOptions o;
    o.strict = strict;
    try {
      load_weights(*model, path, o);
      FAIL("expected an error");
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(path) != std::string::npos);
      for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
    }
    CHECK(at::equal(state_dict(*model).at("fc.bias"), before));  // nothing loaded on failure
  };
  SD wrong = good;
  wrong["vit.model.blocks.1.mlp.fc1.weight"] = at::zeros({255, 64});
  wrong["fc.bias"] = at::zeros({11});
  expect_error(wrong, {"vit.model.blocks.1.mlp.fc1.weight: file [255, 64] vs model [256, 64]",
                       "fc.bias: file [11] vs model [10]"});
  expect_error(wrong, {"vit.model.blocks.1.mlp.fc1.weight"}, /*strict=*/false);

  SD missing = good;
  missing.erase("vit.model.blocks.0.temporal_fc.bias");
  expect_error(missing, {"missing", "vit.model.blocks.0.temporal_fc.bias"});
  LoadOptions lax;
  lax.strict = false;
  LoadReport r = load_state_dict(*model, missing, lax);
  CHECK(r.missing == std::vector<std::string>{"vit.model.blocks.0.temporal_fc.bias"});

  SD extra = good;
  extra["vit.model.blocks.2.norm1.weight"] = at::zeros({64});
  expect_error(extra, {"unexpected", "vit.model.blocks.2.norm1.weight"});
  r = load_state_dict(*model, extra, lax);
  CHECK(r.unexpected == std::vector<std::string>{"vit.model.blocks.2.norm1.weight"});
}

TEST_CASE("weights: position embeddings resize between input sizes") {
  at::manual_seed(11);
  // Nearest resize of a 2x2 grid to 4x4 repeats each position over a 2x2 block; CLS stays.
  at::Tensor pe = at::randn({1, 5, 3});
  at::Tensor r = resize_pos_embed(pe, 4, 4, false);
  CHECK(shape_of(r.sizes()) == "[1,17,3]");
  CHECK(at::equal(r[0][0], pe[0][0]));
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(at::equal(r[0][1 + y * 4 + x], pe[0][1 + (y / 2) * 2 + x / 2]));
  CHECK_THROWS_AS(resize_pos_embed(at::randn({1, 6, 3}), 2, 2, false), std::invalid_argument);

  // A 32 px checkpoint loaded into a 48 px model (nearest) computes what the 32 px model computes on
  // 48 px input (the official forward resizes with 'nearest' on the fly).
  const ModelConfig c32 = tiny_config();
  ModelConfig c48 = c32;
  c48.img_size = 48;
  auto m32 = make_model(c32), m48 = make_model(c48);
  randomize(*m32);
  LoadReport rep = load_state_dict(*m48, state_dict(*m32));
  REQUIRE(rep.resized.size() == 1);
  CHECK(rep.resized[0] == "vit.model.pos_embed: [1, 17, 64] -> [1, 37, 64]");
  m32->eval();
  m48->eval();
  at::NoGradGuard g;
  auto views = random_views(c32, 1, 48);
  CHECK(close(m32->forward(views).logits, m48->forward(views).logits, 1e-5));
  LoadOptions no_resize;
  no_resize.resize_pos_embed = false;
  CHECK_THROWS_WITH_AS(load_state_dict(*m48, state_dict(*m32), no_resize),
                       doctest::Contains("vit.model.pos_embed: file [1, 17, 64] vs model [1, 37, 64]"),
                       std::runtime_error);
}

TEST_CASE("weights: timm ViT weights initialise the spatial and temporal parts") {
  const ModelConfig c = tiny_config();
  auto src = random_model(12);
  const SD s = state_dict(*src);
  // timm naming: no prefix, no temporal parts, a linear patch projection and a classifier; the
  // position grid is 8x8 (as for a 64 px model) so it must be resized to 4x4.
  SD timm;
  const std::string m = "vit.model.";
  for (const auto& [k, v] : s) {
    if (k.rfind(m, 0) != 0) continue;
    const std::string t = k.substr(m.size());
    if (t.find("temporal") != std::string::npos || t.rfind("time_embed", 0) == 0) continue;
    timm[t] = v;
  }
  timm["patch_embed.proj.weight"] = s.at(m + "patch_embed.proj.weight").reshape({64, 3 * 8 * 8});
  const at::Tensor pos8 = at::randn({1, 65, 64});
  timm["pos_embed"] = pos8;
  timm["head.weight"] = at::randn({1000, 64});
  timm["head.bias"] = at::randn({1000});

  auto model = make_model(c);
  LoadReport r = load_timm_vit(*model, timm);
  const SD d = state_dict(*model);
  for (int b = 0; b < 2; ++b) {
    const std::string k = m + "blocks." + std::to_string(b) + ".";
    CHECK(at::equal(d.at(k + "attn.qkv.weight"), s.at(k + "attn.qkv.weight")));
    CHECK(at::equal(d.at(k + "temporal_attn.qkv.weight"), s.at(k + "attn.qkv.weight")));
    CHECK(at::equal(d.at(k + "temporal_attn.proj.bias"), s.at(k + "attn.proj.bias")));
    CHECK(at::equal(d.at(k + "temporal_norm1.weight"), s.at(k + "norm1.weight")));
    CHECK(at::equal(d.at(k + "mlp.fc2.weight"), s.at(k + "mlp.fc2.weight")));
  }
  CHECK(d.at(m + "blocks.1.temporal_fc.weight").abs().max().item<float>() == 0.0f);
  CHECK(d.at(m + "blocks.0.temporal_fc.weight").abs().max().item<float>() > 0.0f);
  CHECK(at::equal(d.at(m + "patch_embed.proj.weight"), s.at(m + "patch_embed.proj.weight")));
  CHECK(at::equal(d.at(m + "pos_embed"), resize_pos_embed(pos8, 4, 4, true)));
  CHECK(at::equal(d.at(m + "pos_embed")[0][0], pos8[0][0]));
  CHECK(r.resized.size() == 1);
  CHECK(std::find(r.unexpected.begin(), r.unexpected.end(), "head.weight") != r.unexpected.end());
  CHECK(std::find(r.missing.begin(), r.missing.end(), m + "time_embed.0") != r.missing.end());
  CHECK(std::find(r.missing.begin(), r.missing.end(), "fc.weight") != r.missing.end());

  SD foreign = timm;
  foreign["something.else"] = at::zeros({1});
  CHECK_THROWS_WITH_AS(load_timm_vit(*model, foreign), doctest::Contains("something.else"),
                       std::runtime_error);
  SD short_of = timm;
  short_of.erase("blocks.1.mlp.fc1.weight");
  CHECK_THROWS_WITH_AS(load_timm_vit(*model, short_of),
                       doctest::Contains("vit.model.blocks.1.mlp.fc1.weight"), std::runtime_error);
}

TEST_CASE("infer: config + weights + input views -> logits and features") {
  TempDir dir;
  const ModelConfig c = tiny_config();
  auto model = random_model(13);
  const std::string weights = dir.file("w.safetensors"), inputs = dir.file("in.safetensors"),
                    outputs = dir.file("out.safetensors");
  save_weights(*model, weights);
  auto views = random_views(c, 3);
  std::vector<std::pair<std::string, at::Tensor>> in;
  for (size_t i = 0; i < views.size(); ++i) in.emplace_back("views." + std::to_string(i), views[i]);
  sefar::io::save_safetensors(inputs, in);

  InferOptions o;
  o.batch_size = 2;  // two passes (2 + 1 clips)
  run_inference(c, weights, inputs, outputs, o);
  std::map<std::string, std::string> meta;
  SD out = sefar::io::load_safetensors(outputs, &meta);
  CHECK(meta.at("format") == "sefar-infer-1");
  CHECK(model_config_from_json(nlohmann::json::parse(meta.at("sefar.model_config"))).embed_dim == 64);
  model->eval();
  at::NoGradGuard g;
  ModelOutput ref = model->forward(views);
  CHECK(close(out.at("logits"), ref.logits));
  CHECK(close(out.at("fused"), ref.fused));
  for (size_t i = 0; i < views.size(); ++i)
    CHECK(close(out.at("features." + std::to_string(i)), ref.features[i]));

  // Token-mix inputs: an all-zeros mask gives the outputs of the second input.
  auto views2 = random_views(c, 3);
  for (size_t i = 0; i < views.size(); ++i) {
    in.emplace_back("mix.views." + std::to_string(i), views2[i]);
    in.emplace_back("mix.masks." + std::to_string(i), at::zeros({c.num_patches()}, at::kBool));
  }
  sefar::io::save_safetensors(inputs, in);
  run_inference(c, weights, inputs, outputs);
  CHECK(close(sefar::io::load_safetensors(outputs).at("logits"), model->forward(views2).logits));

  auto wrong = in;
  wrong[2].second = at::randn({3, 3, 4, 30, 30});
  sefar::io::save_safetensors(inputs, wrong);
  CHECK_THROWS_WITH_AS(run_inference(c, weights, inputs, outputs), doctest::Contains("view 2"),
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(run_inference(c, weights, inputs, outputs), doctest::Contains(inputs.c_str()),
                       std::runtime_error);

  sefar::io::save_safetensors(inputs, std::vector<std::pair<std::string, at::Tensor>>{in[0]});
  CHECK_THROWS_WITH_AS(run_inference(c, weights, inputs, outputs), doctest::Contains("views.1"),
                       std::runtime_error);
}

TEST_CASE("config: JSON round trip and errors") {
  ModelConfig s = ModelConfig::small(288, {2, 4});
  ModelConfig back = model_config_from_json(model_config_to_json(s));
  CHECK(model_config_to_json(back) == model_config_to_json(s));
  ModelConfig b = model_config_from_json(nlohmann::json{{"size", "B"}, {"num_classes", 5}});
  CHECK(b.embed_dim == 768);
  CHECK(b.num_classes == 5);
  CHECK_THROWS_WITH_AS(model_config_from_json(nlohmann::json{{"size", "S"}, {"num_clases", 5}}),
                       doctest::Contains("num_clases"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(model_config_from_json(nlohmann::json{{"img_size", 30}}),
                       doctest::Contains("img_size"), std::invalid_argument);
}
