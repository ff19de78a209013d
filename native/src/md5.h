// Incremental MD5 through OpenSSL's EVP interface (libcrypto), or staged for
// Md5Lanes, which hashes many messages at once.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace usync {

class Md5 {
 public:
  Md5() : ctx_(EVP_MD_CTX_new()) { reset(); }
  ~Md5() { EVP_MD_CTX_free(ctx_); }
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;

  bool ok() const noexcept { return ctx_ != nullptr; }

  // Starts a message.  With a stage (an Md5Lanes slot of cap bytes), its
  // bytes are only copied there while they fit, and final() leaves the
  // digest to whoever hashes the stage (staged() is then true); a longer
  // message is hashed here, as without one.
  void reset(uint8_t* stage = nullptr, size_t cap = 0) noexcept {
    stage_ = stage;
    cap_ = cap;
    len_ = 0;
    staged_ = false;
    started_ = stage == nullptr;
    if (started_) start();
  }
  void update(const void* data, size_t len) noexcept {
    if (len == 0) return;
    if (!started_) {
      if (len <= cap_ - len_) {
        std::memcpy(stage_ + len_, data, len);
        len_ += len;
        return;
      }
      started_ = true;  // too long for the stage: hash what it holds, then the rest
      start();
      if (ctx_ != nullptr && len_ > 0) EVP_DigestUpdate(ctx_, stage_, len_);
    }
    if (ctx_ != nullptr) EVP_DigestUpdate(ctx_, data, len);
  }
  void final(uint8_t out[16]) noexcept {
    if (!started_) {
      staged_ = true;  // out is written by the stage's Md5Lanes::hash
      return;
    }
    unsigned int n = 0;
    if (ctx_ != nullptr) EVP_DigestFinal_ex(ctx_, out, &n);
  }

  // Whether final() left the digest of the message (staged_len() bytes) in
  // the stage.
  bool staged() const noexcept { return staged_; }
  size_t staged_len() const noexcept { return len_; }

 private:
  void start() noexcept {
    if (ctx_ != nullptr) EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr);
  }

  EVP_MD_CTX* ctx_;
  uint8_t* stage_ = nullptr;
  size_t cap_ = 0;
  size_t len_ = 0;
  bool started_ = true;
  bool staged_ = false;
};

}  // namespace usync
