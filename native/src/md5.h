// Incremental MD5 through OpenSSL's EVP interface (libcrypto).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>

namespace usync {

class Md5 {
 public:
  Md5() : ctx_(EVP_MD_CTX_new()) { reset(); }
  ~Md5() { EVP_MD_CTX_free(ctx_); }
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;

  bool ok() const noexcept { return ctx_ != nullptr; }
  void reset() noexcept {
    if (ctx_ != nullptr) EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr);
  }
  void update(const void* data, size_t len) noexcept {
    if (ctx_ != nullptr && len > 0) EVP_DigestUpdate(ctx_, data, len);
  }
  void final(uint8_t out[16]) noexcept {
    unsigned int n = 0;
    if (ctx_ != nullptr) EVP_DigestFinal_ex(ctx_, out, &n);
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace usync
