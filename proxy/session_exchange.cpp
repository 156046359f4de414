// Session: one HTTP exchange (absolute-form, or a request inside a CONNECT): the request head and body
// go up, the response comes down, streamed in both directions; then the next request, or the end.
#include <fmt/format.h>

#include "common/log.h"
#include "proxy/server.h"
#include "proxy/session.h"

namespace egressd::proxy {

void Session::start_exchange() {
  transition_to(Phase::Forwarding);
  const MessageHead& request = client_parser_->head();
  request_was_head_ = request.method == "HEAD";
  request_done_ = false;
  response_started_ = false;
  close_client_after_ = !request.keep_alive;
  upstream_parser_ = std::make_unique<MessageParser>(HTTP_RESPONSE, static_cast<MessageSink&>(*this),
                                                     /*pause_at_head=*/false);
  auto head = upstream_request_head(request, target_);
  request_framing_ = head.framing;
  upstream_.send(std::move(head.bytes));
  last_activity_ms_ = uv_now(server_.loop());
  arm_timer(server_.settings().idle_timeout_ms);
  upstream_.want_reading(true);
  client_parser_->resume();
  std::string body = std::move(pending_client_);
  pending_client_.clear();
  feed_client(body);  // may complete the request at once (no body, or a body already read)
  if (phase_ == Phase::Forwarding && !request_done_) client_.want_reading(true);
}

bool Session::on_head(MessageParser& parser, const MessageHead& head) {
  if (&parser != upstream_parser_.get() || phase_ != Phase::Forwarding) return false;
  const MessageHead& request = client_parser_->head();
  auto out = client_response_head(head, request, request_was_head_, !close_client_after_);
  remember_redirect(head);
  if (head.status >= 200 || head.status == 101) {
    // A refused upgrade leaves llhttp expecting the switched protocol on the client side: end there.
    if (request.upgrade && head.status != 101) close_client_after_ = true;
    response_started_ = true;
    response_framing_ = out.framing;
    close_client_after_ = close_client_after_ || out.close_after;
  }
  client_.send(std::move(out.bytes));
  return request_was_head_;
}

void Session::on_body(MessageParser& parser, std::string_view bytes) {
  if (&parser == client_parser_.get()) {
    if (phase_ == Phase::Discarding) {
      discarded_bytes_ += bytes.size();
      if (discarded_bytes_ > kMaxDiscardBytes) finish("refused request body too large to skip");
      return;
    }
    bytes_up_ += bytes.size();
    upstream_.send(request_framing_ == BodyFraming::Chunked ? chunk(bytes) : std::string(bytes));
  } else {
    bytes_down_ += bytes.size();
    client_.send(response_framing_ == BodyFraming::Chunked ? chunk(bytes) : std::string(bytes));
  }
}

void Session::feed_upstream(std::string_view bytes) {
  while (phase_ == Phase::Forwarding) {
    const auto step = upstream_parser_->feed(bytes);
    bytes.remove_prefix(std::min(step.consumed, bytes.size()));
    switch (step.event) {
      case MessageParser::Event::NeedMore:
        return;
      case MessageParser::Event::MessageComplete:
        if (upstream_parser_->head().status == 101 && client_parser_->head().upgrade) {
          std::string early = std::move(pending_client_);
          pending_client_.clear();
          if (!bytes.empty()) client_.send(std::string(bytes));
          return start_tunnel(early);
        }
        if (upstream_parser_->head().status < 200) {  // 100 Continue and friends: the final answer follows
          upstream_parser_->resume();
          continue;
        }
        return on_response_complete(bytes);
      case MessageParser::Event::Upgrade:
      case MessageParser::Event::HeadComplete:  // responses do not pause at heads
        return finish("upstream switched protocols unasked");
      case MessageParser::Event::HeadTooLarge:
      case MessageParser::Event::TargetTooLong:  // responses have no request-target
        return respond_error({ErrorKind::UpstreamFailed, Side::Upstream,
                              fmt::format("response head from {} is too large", target_.authority())});
      case MessageParser::Event::Invalid:
        return respond_error(
            {ErrorKind::UpstreamFailed, Side::Upstream,
             fmt::format("invalid response from {}: {}", target_.authority(), upstream_parser_->error())});
    }
  }
}

void Session::on_response_complete(std::string_view rest) {
  if (response_framing_ == BodyFraming::Chunked) client_.send(std::string(kLastChunk));
  const bool upstream_reusable =
      upstream_parser_->should_keep_alive() && rest.empty() && request_done_ && !upstream_.eof();
  if (!upstream_reusable) close_upstream();
  if (close_client_after_ || !request_done_ || client_.eof()) {
    transition_to(Phase::Draining);
    client_.shutdown();
    client_.want_reading(!client_.eof());
    if (client_.eof() && !client_.shutdown_pending()) return finish("response complete");
    arm_timer(kLingerMs);
    return;
  }
  next_request();
}

void Session::next_request() {
  transition_to(Phase::ReadingHead);
  arm_timer(server_.settings().head_timeout_ms);
  if (upstream_.is_open()) upstream_.want_reading(true);  // notice an idle upstream closing
  client_parser_->resume();
  std::string buffered = std::move(pending_client_);
  pending_client_.clear();
  client_.want_reading(true);
  feed_client(buffered);
}

}  // namespace egressd::proxy
