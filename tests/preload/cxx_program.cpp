// cxx_program.cpp - a C++ program under the shim: operator new/delete reach
// malloc/free through libstdc++, so containers, strings, exceptions (the
// exception object comes from __cxa_allocate_exception -> malloc), threads
// and shared_ptr control blocks released on another thread all run through
// the pool.  Exits 0 when every check holds; prints what failed otherwise.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <queue>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

int failures = 0;
std::mutex report_lock;

void expect(bool ok, const std::string &what)
{
    if (!ok) {
        std::lock_guard<std::mutex> g(report_lock);
        std::fprintf(stderr, "FAIL: %s\n", what.c_str());
        failures++;
    }
}

void containers()
{
    std::vector<std::string> words;
    for (int i = 0; i < 50000; i++)
        words.push_back("word-" + std::to_string(i * 7919 % 50000));
    std::sort(words.begin(), words.end());
    expect(std::adjacent_find(words.begin(), words.end()) == words.end(), "vector<string>: unique after sort");

    std::map<std::string, int> m;
    std::unordered_map<int, std::vector<int>> um;
    std::set<long> s;
    std::list<std::string> l;
    std::deque<int> d;
    for (int i = 0; i < 40000; i++) {
        m[words[i % words.size()]] += i;
        um[i % 997].push_back(i);
        s.insert((long)i * i);
        if (i % 3 == 0)
            l.push_front(std::string(i % 200, 'x'));
        d.push_back(i);
        if (d.size() > 1000)
            d.pop_front();
    }
    expect(m.size() == 40000, "map size");
    expect(um.size() == 997, "unordered_map size");
    size_t total = 0;
    for (auto &kv : um)
        total += kv.second.size();
    expect(total == 40000, "unordered_map total");
    expect(s.size() == 40000, "set size");
    expect(d.front() == 39000, "deque front");
    l.sort();
    expect(l.front().empty() && l.back().size() == 199, "list sort");

    // A vector that grows far past one segment and shrinks back.
    std::vector<double> big;
    for (int i = 0; i < 1000000; i++)
        big.push_back(i * 0.5);
    expect(std::accumulate(big.begin(), big.end(), 0.0) == 0.5 * (999999.0 * 1000000.0 / 2), "big vector sum");
    big.resize(10);
    big.shrink_to_fit();
    expect(big.size() == 10 && big[9] == 4.5, "shrink_to_fit keeps data");

    std::priority_queue<int> pq;
    for (int i = 0; i < 10000; i++)
        pq.push(i * 31 % 10007);
    expect(pq.top() == 10006 || pq.top() <= 10006, "priority_queue top");
}

void strings()
{
    std::string s;
    for (int i = 0; i < 100000; i++)
        s += static_cast<char>('a' + i % 26);
    expect(s.size() == 100000 && s[99999] == 'a' + 99999 % 26, "string growth");
    std::ostringstream os;
    for (int i = 0; i < 10000; i++)
        os << i << ',';
    std::string out = os.str();
    std::istringstream is(out);
    long sum = 0;
    std::string tok;
    while (std::getline(is, tok, ','))
        sum += std::stol(tok);
    expect(sum == 9999L * 10000 / 2, "stringstream round trip");
    std::string small = "short";
    std::string moved = std::move(s);
    expect(moved.size() == 100000 && small + "!" == "short!", "string move");
}

struct Boom : std::runtime_error {
    std::vector<int> payload;
    explicit Boom(int n) : std::runtime_error("boom " + std::to_string(n)), payload(n, n) {}
};

void exceptions()
{
    int caught = 0;
    for (int i = 0; i < 20000; i++) {
        try {
            std::vector<std::string> local(5, std::string(100, 'e'));
            if (i % 2)
                throw Boom(i % 500);
            throw std::out_of_range(std::string(i % 300, 'o'));
        } catch (const Boom &b) {
            caught += b.payload.size() == (size_t)(i % 500);
        } catch (const std::out_of_range &e) {
            caught += std::string(e.what()).size() == (size_t)(i % 300);
        }
    }
    expect(caught == 20000, "exceptions caught with their payloads");

    // An exception thrown on one thread and rethrown on another.
    std::exception_ptr ep;
    std::thread t([&] {
        try {
            throw Boom(1234);
        } catch (...) {
            ep = std::current_exception();
        }
    });
    t.join();
    try {
        std::rethrow_exception(ep);
    } catch (const Boom &b) {
        expect(b.payload.size() == 1234, "exception_ptr across threads");
    }

    // operator new failure throws bad_alloc.
    bool threw = false;
    try {
        volatile size_t n = (size_t)1 << 62;
        char *volatile p = new char[n]; // volatile: the new may not be elided
        delete[] p;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    expect(threw, "new of 2^62 bytes throws bad_alloc");
    char *q = new (std::nothrow) char[(size_t)1 << 62];
    expect(q == nullptr, "nothrow new of 2^62 bytes returns nullptr");
}

struct Node {
    std::string name;
    std::vector<int> data;
    Node(int i) : name("node" + std::to_string(i)), data(i % 64 + 1, i) {}
};

void threads_and_shared_ptr()
{
    // Producers make shared_ptrs; consumers on other threads drop the last
    // reference, so blocks are freed by threads that did not allocate them.
    std::mutex mu;
    std::condition_variable cv;
    std::queue<std::shared_ptr<Node>> q;
    bool done = false;
    std::atomic<long> consumed{0};
    std::atomic<long> checksum{0};

    std::vector<std::thread> consumers;
    for (int c = 0; c < 3; c++) {
        consumers.emplace_back([&] {
            for (;;) {
                std::shared_ptr<Node> n;
                {
                    std::unique_lock<std::mutex> lk(mu);
                    cv.wait(lk, [&] { return done || !q.empty(); });
                    if (q.empty())
                        return;
                    n = std::move(q.front());
                    q.pop();
                }
                checksum += (long)n->data.size() + n->data[0];
                consumed++;
            }
        });
    }
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; p++) {
        producers.emplace_back([&, p] {
            for (int i = 0; i < 30000; i++) {
                auto n = std::make_shared<Node>(p * 30000 + i);
                std::lock_guard<std::mutex> lk(mu);
                q.push(std::move(n));
                cv.notify_one();
            }
        });
    }
    for (auto &t : producers)
        t.join();
    {
        std::lock_guard<std::mutex> lk(mu);
        done = true;
    }
    cv.notify_all();
    for (auto &t : consumers)
        t.join();
    long expected = 0;
    for (int i = 0; i < 90000; i++)
        expected += (i % 64 + 1) + i;
    expect(consumed == 90000, "every shared_ptr consumed");
    expect(checksum == expected, "shared_ptr contents intact across threads");

    // One shared object, its reference count bumped and dropped by many threads.
    auto shared = std::make_shared<std::vector<std::string>>(1000, "shared");
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++) {
        ts.emplace_back([shared] {
            for (int i = 0; i < 20000; i++) {
                std::shared_ptr<std::vector<std::string>> copy = shared;
                std::weak_ptr<std::vector<std::string>> w = copy;
                if (w.lock()->size() != 1000)
                    std::abort();
            }
        });
    }
    for (auto &t : ts)
        t.join();
    expect(shared.use_count() == 1, "use_count back to 1");

    // futures and short-lived threads.
    std::vector<std::future<std::string>> fs;
    for (int i = 0; i < 64; i++)
        fs.push_back(std::async(std::launch::async, [i] {
            std::string s;
            for (int k = 0; k < 1000; k++)
                s += std::to_string(i);
            return s;
        }));
    for (int i = 0; i < 64; i++)
        expect(fs[i].get().size() == 1000 * std::to_string(i).size(), "future result " + std::to_string(i));
}

} // namespace

int main()
{
    containers();
    strings();
    exceptions();
    threads_and_shared_ptr();
    std::printf("cxx_program: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
