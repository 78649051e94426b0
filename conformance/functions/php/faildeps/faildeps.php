<?php

function check($event, $context)
{
    return 'unreachable';
}
