<?php

namespace Monolog\Handler;

/** Monolog's StreamHandler, as far as Kubeless's example uses it: a stream and a level. */
class StreamHandler
{
    private $stream;
    private $level;

    public function __construct(string $stream, int $level)
    {
        $this->stream = $stream;
        $this->level = $level;
    }

    public function handle(string $channel, string $levelName, int $level, string $message)
    {
        if ($level >= $this->level) {
            file_put_contents($this->stream, sprintf("[%s] %s.%s: %s [] []\n", date('Y-m-d H:i:s'), $channel, $levelName, $message), FILE_APPEND);
        }
    }
}
