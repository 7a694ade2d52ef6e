// gort — Go's goroutine runtime for C++20. This header brings in the whole public API.
#pragma once
#include <gort/runtime.hpp>
#include <gort/debug.hpp>
#include <gort/sync.hpp>
#include <gort/testing.hpp>
