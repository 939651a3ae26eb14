() => new MutationObserver(changes => changes.forEach(change => change.addedNodes.forEach(node =>
    [node, ...(node.querySelectorAll?.('*') || [])].filter(e => e.matches?.('.sketch button[aria-label=Brush]'))
        .forEach(brush => brush.click())))).observe(document.body, {childList: true, subtree: true})
