// gort — Go's goroutine runtime for C++20. This header brings in the whole public API.
#pragma once
#include <gort/runtime.hpp>
#include <gort/debug.hpp>
#include <gort/sync.hpp>
#include <gort/chan.hpp>
#include <gort/select.hpp>
#include <gort/time.hpp>
#include <gort/context.hpp>
#include <gort/group.hpp>
#include <gort/net.hpp>
#include <gort/testing.hpp>
