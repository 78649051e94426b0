<?php

require 'vendor/autoload.php';

function check($event, $context)
{
    return kelp_conformance_ok();
}
