<?php
// A module that fails to load (a syntax error), for the load-failure case.

function hello($event, $context)
{
    return 'hello'
}
