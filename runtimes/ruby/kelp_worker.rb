# Kelp Ruby worker (a plugin runtime: runtimes/ruby/runtime.json).
#
# Started by kelp-runtime as `ruby kelp_worker.rb` with KELP_WORKER_SOCKET set; it connects to
# that Unix socket and speaks the framed protocol of runtimes/PROTOCOL.md:
# hello -> load -> loaded | load_error -> (invoke -> result)* -> exit 0 at end-of-file.
#
# Kubeless's Ruby semantics: `def name(event, context)` in the code file, evaluated into a module
# of its own; the event's keys are symbols (`event[:data]`, `event[:'event-id']`,
# `event[:extensions][:request]`); a JSON body is `JSON.parse`d (string keys). Standard library
# only. Nothing of the protocol is written to stdout/stderr.

require 'json'
require 'socket'

$stdout.sync = true
$stderr.sync = true

# What Kelp gives Ruby functions.
module Kelp
  # A result with a status and headers: `Kelp::Response.new('created', status: 201,
  # headers: { 'x-kelp' => 'yes' })`; its body follows the same rules as a returned value.
  class Response
    attr_reader :body, :status, :headers

    def initialize(body = nil, status: 200, headers: {})
      @body = body
      @status = status
      @headers = headers
    end
  end

  # The request (`event[:extensions][:request]`): a Hash of the protocol's `request` object
  # (string keys: 'method', 'path', 'url', 'query', 'headers') with a case-insensitive header
  # lookup.
  class Request < Hash
    def header(name)
      (self['headers'] || {})[name.to_s.downcase]
    end
  end
end

CT_TEXT = 'text/plain; charset=utf-8'.freeze
CT_BINARY = 'application/octet-stream'.freeze
CT_JSON = 'application/json'.freeze

# Reads one frame: [header Hash, body String (binary)], or nil at end-of-file.
def read_frame(io)
  size = io.read(4) or return nil
  header = JSON.parse(io.read(size.unpack1('N')))
  body = io.read(io.read(4).unpack1('N'))
  [header, body]
end

# Writes one frame.
def write_frame(io, header, body = '')
  head = JSON.generate(header)
  body = body.b
  io.write([head.bytesize].pack('N'), head, [body.bytesize].pack('N'), body)
end

def result(status, headers, failed, body)
  [{ 'type' => 'result', 'status' => status, 'headers' => headers, 'failed' => failed }, body]
end

# The body and default content type of a returned value.
def body_of(value)
  case value
  when nil then [nil, '']
  when String
    value.encoding == Encoding::BINARY ? [CT_BINARY, value] : [CT_TEXT, value]
  else [CT_JSON, JSON.generate(value)]
  end
end

# The result frame of a returned value (a `Kelp::Response`, or its body alone).
def answer(value)
  response = value.is_a?(Kelp::Response) ? value : Kelp::Response.new(value)
  type, body = body_of(response.body)
  headers = (response.headers || {}).map { |k, v| [k.to_s, v.to_s] }
  headers << ['content-type', type] if type && headers.none? { |k, _| k.casecmp?('content-type') }
  status = response.status
  unless status.is_a?(Integer) && status.between?(100, 999)
    raise ArgumentError, "invalid response status #{status.inspect}: expected an integer from 100 to 999"
  end
  result(status, headers, false, body)
end

def failure(error)
  $stderr.puts "#{error.class}: #{error.message}", *error.backtrace
  result(500, [['content-type', CT_TEXT]], true, error.message.to_s)
end

# Uses the dependencies installed in `paths` (each an install directory of the Gemfile).
def use_dependencies(paths)
  paths.each do |path|
    gemfile = File.join(path, 'Gemfile')
    next unless File.file?(gemfile)
    ENV['BUNDLE_GEMFILE'] = gemfile
    ENV['BUNDLE_PATH'] = File.join(path, 'vendor', 'bundle')
    require 'bundler/setup'
  end
end

# Loads the handler: the module `Module.new` holding the code file, as Kubeless did.
def load_function(msg)
  file = File.join(msg['code_dir'].to_s, "#{msg['module']}.rb")
  handler = msg['handler'].to_s
  (msg['env'] || {}).each { |k, v| ENV[k] = v.to_s }
  $LOAD_PATH.unshift(msg['code_dir'].to_s)
  use_dependencies(msg['paths'] || [])
  mod = Module.new
  mod.module_eval(File.read(file), file)
  unless mod.method_defined?(handler) || mod.private_method_defined?(handler)
    raise NameError, "the module does not define #{handler}"
  end
  mod.module_eval { module_function handler.to_sym }
  mod.method(handler.to_sym)
rescue ScriptError, StandardError => e
  raise LoadError, "cannot load handler \"#{handler}\" from module \"#{msg['module']}\" (#{file}): #{e.class}: #{e.message}"
end

def invoke(function, context, msg, body)
  data =
    if msg['data'] == 'json'
      begin
        text = body.force_encoding(Encoding::UTF_8).delete_prefix("\uFEFF")
        text.empty? ? nil : JSON.parse(text, quirks_mode: true)
      rescue JSON::ParserError => e
        return result(400, [['content-type', CT_TEXT]], false, "invalid JSON body: #{e.message}")
      end
    else
      body.force_encoding(Encoding::UTF_8)
    end
  event = (msg['event'] || {}).transform_keys(&:to_sym)
  event[:data] = data
  event[:extensions] = { request: Kelp::Request.new.merge!(msg['request'] || {}) }
  answer(function.call(event, context))
rescue StandardError, ScriptError, SystemStackError => e
  failure(e)
end

sock = UNIXSocket.new(ENV.fetch('KELP_WORKER_SOCKET') { abort 'kelp_worker: KELP_WORKER_SOCKET is not set' })
write_frame(sock, { 'type' => 'hello', 'pid' => Process.pid, 'version' => RUBY_VERSION })
msg, = read_frame(sock)
exit 0 if msg.nil?
begin
  function = load_function(msg)
rescue LoadError => e
  $stderr.puts "kelp_worker: #{e.message}"
  write_frame(sock, { 'type' => 'load_error', 'message' => e.message })
  exit 1
end
context = (msg['context'] || {}).transform_keys(&:to_sym)
write_frame(sock, { 'type' => 'loaded' })
while (frame = read_frame(sock))
  header, body = frame
  write_frame(sock, *invoke(function, context, header, body))
end
