require 'logger'

# What Kubeless's example calls of the logging gem: `Logging.logger(io).info(message)`.
module Logging
  def self.logger(io)
    ::Logger.new(io)
  end
end
