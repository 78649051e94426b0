<?php

namespace Monolog;

/** What Kubeless's example calls of Monolog's Logger: a channel, handlers, info(). */
class Logger
{
    const INFO = 200;

    private $name;
    private $handlers = [];

    public function __construct(string $name)
    {
        $this->name = $name;
    }

    public function pushHandler($handler)
    {
        array_unshift($this->handlers, $handler);
        return $this;
    }

    public function info(string $message)
    {
        foreach ($this->handlers as $handler) {
            $handler->handle($this->name, 'INFO', self::INFO, $message);
        }
    }
}
