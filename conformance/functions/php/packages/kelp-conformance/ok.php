<?php

function kelp_conformance_ok()
{
    return 'deps ok';
}
