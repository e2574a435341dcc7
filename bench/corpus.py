"""Deterministic Jekyll-style corpus generator for the benchmarks.

``generate(dir, n)`` writes ``n`` posts (a few of them dated in 2099, so not yet
published) plus a few drafts and a ``_config.yml``. The same ``n`` and seed give
byte-identical output. ``ensure_corpus(n)`` caches the result under
``bench/corpus/<n>/`` and reuses it when its manifest says it is complete.

Run ``python -m bench.corpus 1000 [DIR]`` to generate one by hand.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

GENERATOR_VERSION = 1
DEFAULT_SEED = 20240601
MANIFEST = ".bench-corpus.json"
BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / "corpus"

TZ = timezone(timedelta(hours=8))
# Six ASCII and six Chinese category names: the Chinese ones exercise the
# percent-encoded URLs.
CATEGORIES: tuple[str, ...] = (
    "tech", "life", "travel", "notes", "music", "cooking",
    "随笔", "读书", "编程", "摄影", "电影", "思考",
)
# The category the change-to-visible test writes into, and the category and
# tag whose feeds the cold-render test fetches.
PROBE_CATEGORY = "tech"
RENDER_CATEGORY = "读书"
RENDER_TAG_RANK = 5  # the sixth most used tag: always has >= 20 posts at n >= 1000
N_TAGS = 200
ZIPF_S = 1.07
DIR_POST_SHARE = 0.12  # share of posts placed in <cat>/_posts/
YEARS = (2006, 2024)  # publication years, inclusive

_ASCII_TAGS = (
    "python", "rust", "go", "linux", "docker", "kubernetes", "git", "vim", "emacs",
    "postgres", "sqlite", "redis", "nginx", "http", "tcp", "dns", "unicode", "css",
    "javascript", "typescript", "react", "wasm", "llvm", "gcc", "bash", "zsh",
    "jekyll", "markdown", "rss", "atom", "json", "yaml", "testing", "ci", "perf",
    "security", "crypto", "ml", "data", "web",
)
_WORDS_TEXT = """
我们 今天 时间 问题 工作 生活 技术 世界 城市 朋友 记忆 阅读 写作
学习 思考 音乐 电影 咖啡 早晨 夜晚 春天 夏天 秋天 冬天 旅行 火车
海边 山路 雨水 阳光 风景 照片 相机 镜头 代码 程序 系统 网络 服务
数据 算法 模型 测试 性能 内存 磁盘 缓存 文件 目录 编码 字符 浏览
页面 链接 订阅 博客 文章 作者 读者 标题 标签 分类 日期 版本 发布
更新 修复 设计 结构 接口 函数 变量 对象 类型 错误 异常 日志 调试
部署 服务器 客户端 请求 响应 线程 进程 并发 队列 调度 存储 索引 查询
事务 备份 安全 权限 密钥 证书 协议 格式 解析 渲染 模板 样式 布局
字体 颜色 图片 声音 故事 历史 文化 传统 未来 过去 现在 理想 现实
自然 社会 经济 教育 健康 运动 跑步 散步 睡眠 梦想 计划 目标 习惯
方法 经验 教训 答案 原因 结果 变化 发展 进步 简单 复杂 安静 热闹
温暖 寒冷 明亮 深刻 有趣 重要 必要 可能 也许 已经 仍然 总是 偶尔
终于 突然 慢慢 认真 仔细 轻松 快乐 孤独 自由 美好 平凡 特别
"""
_WORDS = tuple(_WORDS_TEXT.split())
_CODE_SNIPPETS = (
    ("python", "def handler(request):\n    items = load_posts()\n    return render(items)\n"),
    ("bash", "for f in _posts/*.md; do\n  wc -c \"$f\"\ndone\n"),
    ("go", "func main() {\n\tfmt.Println(\"你好，世界\")\n}\n"),
    ("yaml", "title: 示例\ntags: [python, 测试]\n"),
)


@dataclass
class Manifest:
    n: int
    seed: int
    version: int
    posts: int  # files in any _posts/ directory, future-dated ones included
    future_posts: int
    drafts: int
    dir_posts: int  # of which in <cat>/_posts/
    total_bytes: int
    categories: dict[str, int] = field(default_factory=dict)  # published posts only
    tags: dict[str, int] = field(default_factory=dict)  # published posts only, by rank
    probe_category: str = PROBE_CATEGORY
    render_category: str = RENDER_CATEGORY
    render_tag: str = ""
    generated_in_s: float = 0.0

    @property
    def published(self) -> int:
        return self.posts - self.future_posts


def _make_tags(rng: random.Random) -> list[str]:
    tags: list[str] = list(_ASCII_TAGS)
    pairs = [a + b for a, b in itertools.permutations(_WORDS[:60], 2) if len(a + b) <= 5]
    rng.shuffle(pairs)
    seen = set(tags)
    for p in pairs:
        if len(tags) >= N_TAGS:
            break
        if p not in seen:
            seen.add(p)
            tags.append(p)
    rng.shuffle(tags)  # mix ASCII and Chinese across the popularity ranks
    return tags


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(5, 16))
    cut = rng.randint(2, len(words) - 2)
    end = rng.choice("。。。！？")
    return "".join(words[:cut]) + "，" + "".join(words[cut:]) + end


def _title(rng: random.Random, i: int) -> str:
    words = "".join(rng.choices(_WORDS, k=rng.randint(2, 5)))
    r = rng.random()
    if r < 0.08:
        # needs YAML quoting: contains ": " and ASCII
        return json.dumps(f"{rng.choice(_ASCII_TAGS)}: {words}（{i}）", ensure_ascii=False)
    if r < 0.15:
        return f"关于{words}的第{i}篇笔记"
    return f"{words}{i}"


class _BodyMaker:
    """Bodies are drawn from a pool of pre-made blocks: fast and still varied."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sentences = [_sentence(rng) for _ in range(3000)]
        self.blocks = [self._block() for _ in range(6000)]
        self.sizes = [len(b.encode()) + 2 for b in self.blocks]

    def _para(self) -> str:
        return "".join(self.rng.choices(self.sentences, k=self.rng.randint(2, 6)))

    def _block(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return f"<p>{self._para()}</p>"
        if r < 0.65:
            p = self._para()
            k = rng.randrange(0, max(1, len(p) - 6))
            word = rng.choice(_ASCII_TAGS)
            return (
                f"{p[:k]}**{p[k:k + 4]}**{p[k + 4:]} 参见 [{word}](https://example.com/{word})"
                f"，以及 `{word}.conf`。"
            )
        if r < 0.75:
            return "## " + "".join(rng.choices(_WORDS, k=rng.randint(2, 4)))
        if r < 0.85:
            return "\n".join("- " + rng.choice(self.sentences) for _ in range(rng.randint(2, 5)))
        if r < 0.93:
            return "> " + self._para()
        lang, code = rng.choice(_CODE_SNIPPETS)
        return f"```{lang}\n{code}```"

    def body(self, i: int) -> str:
        """1-6 KB: a unique opening paragraph, then pooled blocks."""
        rnd = self.rng.random
        target = 1024 + int(rnd() * 5120)
        first = f"<p>第{i}篇。{self.sentences[int(rnd() * len(self.sentences))]}</p>"
        parts = [first]
        size = len(first.encode()) + 2
        nb = len(self.blocks)
        while size < target:
            k = int(rnd() * nb)
            b = self.blocks[k]
            if size + self.sizes[k] > 6144 and size >= 1024:
                break
            parts.append(b)
            size += self.sizes[k]
        return "\n\n".join(parts) + "\n"


def _write_files(batch: list[tuple[str, bytes]]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for path, data in batch:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _flow_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _config_yml() -> str:
    return (
        "title: 基准测试博客\n"
        "description: 由 bench/corpus.py 生成的测试语料\n"
        "url: \"http://127.0.0.1:4000\"\n"
        "timezone: Asia/Shanghai\n"
        "author: 基准\n"
        "feed:\n"
        "  posts_limit: 20\n"
    )


def generate(dest: str | os.PathLike[str], n: int, seed: int = DEFAULT_SEED) -> Manifest:
    """Write a corpus of ``n`` posts into ``dest`` (created; must be empty or absent)."""
    t0 = time.perf_counter()
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    rng = random.Random(f"{seed}:{n}")
    tags = _make_tags(rng)
    tag_cw = list(itertools.accumulate(1.0 / (r + 1) ** ZIPF_S for r in range(len(tags))))
    maker = _BodyMaker(rng)

    n_future = 3 + n // 20000
    n_drafts = 3 + n // 20000
    future_idx = set(rng.sample(range(n), min(n_future, n)))
    start = datetime(YEARS[0], 1, 1, tzinfo=TZ)
    span = int((datetime(YEARS[1] + 1, 1, 1, tzinfo=TZ) - start).total_seconds()) - 1

    (root / "_config.yml").write_text(_config_yml(), encoding="utf-8")
    made_dirs: set[str] = set()
    cat_counts = dict.fromkeys(CATEGORIES, 0)
    tag_counts = dict.fromkeys(tags, 0)
    total = 0
    dir_posts = 0
    # File creation is the floor on ext4 (0.1-0.5 ms each here): a writer thread overlaps
    # it with generating the next posts (os.open/os.write release the GIL).
    pool = ThreadPoolExecutor(1)
    pending: list[Future[None]] = []
    batch: list[tuple[str, bytes]] = []

    def post_text(i: int, title: str, date: str, cats: list[str], ptags: list[str]) -> str:
        return (
            f"---\ntitle: {title}\ndate: {date}\ncategories: {_flow_list(cats)}\n"
            f"tags: {_flow_list(ptags)}\n---\n\n{maker.body(i)}"
        )

    rnd = rng.random
    ncat = len(CATEGORIES)
    for i in range(n):
        future = i in future_idx
        if future:
            when = datetime(2099, 1, 1, tzinfo=TZ) + timedelta(seconds=rng.randrange(86400 * 300))
        else:
            when = start + timedelta(seconds=int(rnd() * span))
        cats = [CATEGORIES[int(rnd() * ncat)]]
        if rnd() < 0.15:
            other = CATEGORIES[int(rnd() * ncat)]
            if other != cats[0]:
                cats.append(other)
        ptags = list(dict.fromkeys(rng.choices(tags, cum_weights=tag_cw, k=1 + int(rnd() * 4))))
        in_cat_dir = not future and rnd() < DIR_POST_SHARE
        posts_dir = f"{root}/{cats[0]}/_posts" if in_cat_dir else f"{root}/_posts"
        if posts_dir not in made_dirs:
            os.makedirs(posts_dir, exist_ok=True)
            made_dirs.add(posts_dir)
        stamp = when.strftime("%Y-%m-%d %H:%M:%S %z")
        name = f"{stamp[:10]}-p{i:06d}-{_ASCII_TAGS[int(rnd() * len(_ASCII_TAGS))]}.md"
        data = post_text(i, _title(rng, i), stamp, cats, ptags).encode()
        batch.append((f"{posts_dir}/{name}", data))
        if len(batch) >= 256:
            pending.append(pool.submit(_write_files, batch))
            batch = []
            if len(pending) > 8:
                pending.pop(0).result()
        total += len(data)
        if in_cat_dir:
            dir_posts += 1
        if not future:
            for c in cats:
                cat_counts[c] += 1
            for t in ptags:
                tag_counts[t] += 1

    pending.append(pool.submit(_write_files, batch))
    for fut in pending:
        fut.result()
    pool.shutdown()

    drafts = root / "_drafts"
    drafts.mkdir()
    for j in range(n_drafts):
        # Drafts have no date in the name; half have none in front matter either.
        date = "2099-01-01 00:00:00 +0800"
        text = post_text(n + j, f"草稿{j}", date, [PROBE_CATEGORY], [tags[0]])
        if j % 2:
            text = text.replace("date: 2099-01-01 00:00:00 +0800\n", "")
        (drafts / f"draft-{j}.md").write_text(text, encoding="utf-8")

    ranked = sorted(tag_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    m = Manifest(
        n=n, seed=seed, version=GENERATOR_VERSION, posts=n, future_posts=len(future_idx),
        drafts=n_drafts, dir_posts=dir_posts, total_bytes=total, categories=cat_counts,
        tags=dict(ranked), render_tag=ranked[min(RENDER_TAG_RANK, len(ranked) - 1)][0],
    )
    m.generated_in_s = round(time.perf_counter() - t0, 2)
    (root / MANIFEST).write_text(json.dumps(asdict(m), ensure_ascii=False, indent=1), "utf-8")
    return m


def count_posts(root: Path) -> int:
    n = 0
    for d in [root / "_posts", *(root / c / "_posts" for c in CATEGORIES)]:
        if d.is_dir():
            n += sum(1 for e in os.scandir(d) if e.name.endswith(".md"))
    return n


def load_manifest(root: Path) -> Manifest | None:
    try:
        raw = json.loads((root / MANIFEST).read_text("utf-8"))
        return Manifest(**raw)
    except (OSError, ValueError, TypeError):
        return None


CHANGE_MARK = "bench-change"  # in the names of posts the change test adds


def clean_leftovers(root: Path) -> list[Path]:
    """Remove what an interrupted change test may have left; the paths removed."""
    gone: list[Path] = []
    for pattern in (f"_posts/*-{CHANGE_MARK}-*.md", ".tmp-bench-*"):
        for p in root.glob(pattern):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def ensure_corpus(
    n: int, seed: int = DEFAULT_SEED, cache: Path = CACHE_DIR
) -> tuple[Path, Manifest]:
    """The cached corpus of ``n`` posts, generated first if missing or incomplete."""
    root = cache / str(n)
    m = load_manifest(root)
    if m:
        clean_leftovers(root)
    if m and m.version == GENERATOR_VERSION and m.seed == seed and count_posts(root) == m.posts:
        return root, m
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{n}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"generating corpus of {n} posts in {root} ...", flush=True)
    try:
        m = generate(tmp, n, seed)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mb = m.total_bytes / 2**20
    print(f"  generated {n} posts ({mb:.0f} MiB) in {m.generated_in_s:.1f} s", flush=True)
    return root, m


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit():
        print("usage: python -m bench.corpus N [DIR]", file=sys.stderr)
        return 2
    n = int(argv[0])
    if len(argv) > 1:
        m = generate(argv[1], n)
        print(f"{n} posts, {m.total_bytes / 2**20:.1f} MiB, {m.generated_in_s:.1f} s")
    else:
        root, m = ensure_corpus(n)
        print(f"{root}: {n} posts, {m.total_bytes / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
